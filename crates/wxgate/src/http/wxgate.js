/*! wxgate.js — signs wx.config through wxgate. Include after WeChat's jweixin script:
 *    <script src="https://res.wx.qq.com/open/js/jweixin-1.6.0.js"></script>
 *    <script src="https://wx.example.com/jssdk/main/wxgate.js"></script>
 *    wxgate.ready(['updateAppMessageShareData']).then(function () { wx.updateAppMessageShareData({...}); });
 * The gateway and the account are read from this script's own URL. On iOS WeChat checks the
 * signature against the URL the page was loaded with (the landing URL), elsewhere against the
 * current one; this script signs the right one. */
(function () {
  'use strict';
  var self = document.currentScript;
  var match = self && self.src && self.src.match(/^(.*)\/jssdk\/([^\/?#]+)\/wxgate\.js(?:[?#].*)?$/);
  if (!match) {
    if (window.console) console.error('wxgate.js: cannot tell the gateway from this script\'s URL');
    return;
  }
  var base = match[1];
  var account = decodeURIComponent(match[2]);
  var storageKey = 'wxgate:landing:' + account;
  var ua = navigator.userAgent || '';
  var isIOS = /iPhone|iPad|iPod/i.test(ua) ||
    (navigator.platform === 'MacIntel' && navigator.maxTouchPoints > 1);

  // Every full page load is a new landing URL; a single-page app's route changes are not.
  var landing = location.href.split('#')[0];
  try { sessionStorage.setItem(storageKey, landing); } catch (e) { /* private mode */ }

  function landingUrl() {
    try { return sessionStorage.getItem(storageKey) || landing; } catch (e) { return landing; }
  }

  /** The URL WeChat will check on this device. */
  function pageUrl() {
    return isIOS ? landingUrl() : location.href.split('#')[0];
  }

  function getJSON(url) {
    if (window.fetch) {
      return fetch(url, { credentials: 'omit' }).then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error((body && body.error && body.error.message) || ('HTTP ' + r.status));
          return body;
        });
      });
    }
    return new Promise(function (resolve, reject) {
      var x = new XMLHttpRequest();
      x.open('GET', url);
      x.onload = function () {
        var body = null;
        try { body = JSON.parse(x.responseText); } catch (e) { /* not JSON */ }
        if (x.status >= 200 && x.status < 300 && body) resolve(body);
        else reject(new Error((body && body.error && body.error.message) || ('HTTP ' + x.status)));
      };
      x.onerror = function () { reject(new Error('network error')); };
      x.send();
    });
  }

  /** The signed config for `apis` (an array of JS-SDK API names). */
  function config(apis, url) {
    var target = url || pageUrl();
    return getJSON(base + '/jssdk/' + encodeURIComponent(account) + '/config?url=' +
      encodeURIComponent(target) + '&apis=' + encodeURIComponent((apis || []).join(',')));
  }

  /** Signs this page and calls wx.config; resolves with the config once wx.ready fires. */
  function ready(apis, options) {
    options = options || {};
    return config(apis, options.url).then(function (c) {
      var wx = window.wx;
      if (!wx || typeof wx.config !== 'function') throw new Error('wxgate.js: load jweixin (window.wx) first');
      return new Promise(function (resolve, reject) {
        wx.config({
          debug: !!options.debug,
          appId: c.appId,
          timestamp: c.timestamp,
          nonceStr: c.nonceStr,
          signature: c.signature,
          jsApiList: c.jsApiList
        });
        wx.ready(function () { resolve(c); });
        if (typeof wx.error === 'function') {
          wx.error(function (res) {
            var e = new Error('wx.config failed: ' + ((res && res.errMsg) || 'unknown error') +
              ' — ask ' + base + '/jssdk/' + account + '/diagnose why');
            e.config = c;
            reject(e);
          });
        }
      });
    });
  }

  /** Asks wxgate why a signature does not verify (see /jssdk/{account}/diagnose). */
  function diagnose(c, url) {
    return getJSON(base + '/jssdk/' + encodeURIComponent(account) + '/diagnose?url=' +
      encodeURIComponent(url || c.url || pageUrl()) + '&signature=' + encodeURIComponent(c.signature) +
      '&timestamp=' + encodeURIComponent(c.timestamp) + '&nonceStr=' + encodeURIComponent(c.nonceStr));
  }

  window.wxgate = {
    base: base,
    account: account,
    isIOS: isIOS,
    pageUrl: pageUrl,
    landingUrl: landingUrl,
    config: config,
    ready: ready,
    diagnose: diagnose
  };
})();

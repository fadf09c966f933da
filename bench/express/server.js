// The Express JS-SDK signing server the original documents teach, as bench/run.sh's baseline for
// wxgate's `GET /jssdk/{account}/config` (bench/cases/express.sh starts it and measures it).
//
// It follows /work/shared/seeds/002 ("nodejs微信jssdk后端接口", 2016), the one document with a
// whole Express JS-SDK route that caches both credentials:
//   - getToken() / getJsTicket(): read the value from Redis (`redis.getVal`); on a miss fetch it
//     from WeChat (`cgi-bin/token`, then `cgi-bin/ticket/getticket?type=jsapi`) and store it with
//     the `expires_in` WeChat answered (`redis.setKey(key, value, expires)`). So every request
//     costs one Redis GET for the ticket; the token is only read when the ticket is missing.
//   - sign(): `raw()` sorts the keys, lower-cases them and joins `k=v` with `&`, then
//     `crypto.createHash('sha1')`, with createNonceStr() = Math.random().toString(36) and
//     createTimestamp() = seconds as a string, exactly as in the document (seed 004 has the same
//     raw/createNonceStr/createTimestamp, from WeChat's official sample).
//   - routerSdk(): `res.json(obj)`, or `res.end('no url')`.
// The rest of the scaffolding is the other documents': an Express app started with
// `node app.js` in one process (seed 003), axios for the WeChat calls (seeds 000 and 001; seed
// 002 used the now-deprecated `request`, which only matters on a cache miss). Express is the 4.x
// line the documents were written for (express-generator's, seed 000); on the bench machine
// Express 5's router served this route 15-30 % fewer requests per second, so 4.x is also the
// stronger baseline.
//
// Differences from the document, each so that both servers do the same job:
//   - the route is `GET /jssdk/:account/config?url=…` (the document POSTs `url` in the body) and
//     the account segment is not looked up (one account, as in every document);
//   - the answer has the fields wxgate answers, `{appId, timestamp, nonceStr, signature,
//     jsApiList, url}` (timestamp as a number, `apis=a,b` → jsApiList), where the document
//     answered its signing object (which also held the jsapi_ticket itself);
//   - the Redis helper the document leaves out ("省略了redis部分") is node-redis's `get` and
//     `set … EX`, keys prefixed so the bench shares a Redis without touching anything else.
// Like the document it does no domain check (wxgate checks the page's host on every request).
//
// EXPRESS_CACHE picks where getVal/setKey keep the two values, for the other documents' designs:
//   redis  (default) seed 002, above;
//   memory seed 001's node-cache (stdTTL 7200, checkperiod 120) in the process, applied to the
//          ticket as it applies it to the token;
//   none   seed 000: nothing is kept, every request fetches a token and a ticket.
//
// Environment: PORT, WECHAT_API_BASE (e.g. http://127.0.0.1:19900/cgi-bin, wxgate's mock
// WeChat in the bench), APPID, APPSECRET, REDIS_URL, REDIS_PREFIX, EXPRESS_CACHE.

const crypto = require('crypto')
const qs = require('querystring')
const axios = require('axios')
const express = require('express')

const config = {
  port: Number(process.env.PORT || 3000),
  appid: process.env.APPID,
  appsecret: process.env.APPSECRET,
  gettoken_url: `${process.env.WECHAT_API_BASE}/token?`,
  ticket_start: `${process.env.WECHAT_API_BASE}/ticket/getticket?access_token=`,
  ticket_end: '&type=jsapi',
  redis_url: process.env.REDIS_URL || 'redis://127.0.0.1:6379/15',
  cache: process.env.EXPRESS_CACHE || 'redis',
}
// Key prefix: bench/cases/express.sh gives each run its own, so a run never signs with a ticket a
// previous run's mock issued (the values would otherwise outlive it in Redis, as designed).
const PREFIX = process.env.REDIS_PREFIX || 'wxgate-bench-express:'

// The document's `redis` helper: getVal(key) → value or null, setKey(key, value, expires).
function makeStore (kind) {
  if (kind === 'redis') {
    const client = require('redis').createClient({ url: config.redis_url })
    client.on('error', function (err) { console.log('redis', err) })
    return {
      connect: () => client.connect(),
      getVal: (key) => client.get(PREFIX + key),
      setKey: (key, value, expires) =>
        client.set(PREFIX + key, value, { expiration: { type: 'EX', value: expires } }),
    }
  }
  if (kind === 'memory') {
    const NodeCache = require('node-cache')
    const myCache = new NodeCache({ stdTTL: 7200, checkperiod: 120 })
    return {
      connect: async () => {},
      getVal: async (key) => {
        const value = myCache.get(key)
        return value === undefined ? null : value
      },
      setKey: async (key, value, expires) => { myCache.set(key, value, expires) },
    }
  }
  if (kind === 'none') {
    return { connect: async () => {}, getVal: async () => null, setKey: async () => {} }
  }
  throw new Error(`EXPRESS_CACHE must be redis, memory or none, not ${kind}`)
}
const redis = makeStore(config.cache)

/**
 * 获取token
 * @return {promise} res 值为token
 */
function getToken () {
  return redis.getVal('token') // 首先读取 redis 是否存在token
    .then(function (res) {
      if (res === null) { // 若不存在，则返回savetoken() 获取
        return saveToken()
      } else { // 若存在 则直接返回
        return res
      }
    })
    .catch(function (err) { // 捕获 错误
      console.log(err)
    })
}

/**
 * 从服务端获取token 并保存在redis中
 * @return {promise} 值 为 token
 */
function saveToken () {
  const params = {
    grant_type: 'client_credential',
    appid: config.appid,
    secret: config.appsecret,
  }
  return axios.get(config.gettoken_url + qs.stringify(params)).then(function (res) {
    const bodys = res.data
    const expires = bodys.expires_in
    const token = bodys.access_token
    redis.setKey('token', token, expires) // 将token 保存到 redis
      .catch(function (err) {
        console.log(err)
      })
    return token
  })
}

/**
 * 获取ticket
 * @return {promise} res 值为ticket
 */
function getJsTicket () {
  return redis.getVal('ticket') // 首先读取 redis 是否存在ticket
    .then(function (res) {
      if (res === null) { // 若不存在，则返回saveJsTicket() 获取
        return saveJsTicket()
      } else { // 若存在 则直接返回
        return res
      }
    })
    .catch(function (err) { // 捕获 错误
      console.log(err)
    })
}

/**
 * 从服务端获取ticket 并保存在redis中
 * @return {promise} 值 为 ticket
 */
function saveJsTicket () {
  return getToken().then(function (token) {
    const reqUrl = config.ticket_start + token + config.ticket_end
    return axios.get(reqUrl).then(function (res) {
      const bodys = res.data // 解析微信服务器返回的
      const ticket = bodys.ticket // 获取 ticket
      const expires = bodys.expires_in // 获取过期时间
      redis.setKey('ticket', ticket, expires) // 将ticket 保存到 redis
        .catch(function (err) {
          console.log(err)
        })
      return ticket
    })
  })
}

// sha1加密
function sha1 (str) {
  const shasum = crypto.createHash('sha1')
  shasum.update(str)
  str = shasum.digest('hex')
  return str
}

/**
 * 生成签名的时间戳
 * @return {字符串}
 */
function createTimestamp () {
  return parseInt(new Date().getTime() / 1000) + ''
}

/**
 * 生成签名的随机串
 * @return {字符串}
 */
function createNonceStr () {
  return Math.random().toString(36).substr(2, 15)
}

/**
 * 对参数对象进行字典排序
 * @param  {对象} args 签名所需参数对象
 * @return {字符串}    排序后生成字符串
 */
function raw (args) {
  let keys = Object.keys(args)
  keys = keys.sort()
  const newArgs = {}
  keys.forEach(function (key) {
    newArgs[key.toLowerCase()] = args[key]
  })

  let string = ''
  for (const k in newArgs) {
    string += '&' + k + '=' + newArgs[k]
  }
  string = string.substr(1)
  return string
}

/**
 * 签名算法: the document's sign(), answering wxgate's fields (see the top).
 * @param jsapi_ticket 用于签名的 jsapi_ticket
 * @param url 用于签名的 url
 * @param apis the page's `apis` parameter (wxgate's jsApiList)
 */
function sign (jsapi_ticket, url, apis) {
  const ret = {
    jsapi_ticket: jsapi_ticket,
    nonceStr: createNonceStr(),
    timestamp: createTimestamp(),
    url: url,
  }
  const string = raw(ret)
  return {
    appId: config.appid,
    timestamp: Number(ret.timestamp),
    nonceStr: ret.nonceStr,
    signature: sha1(string),
    jsApiList: (apis || '').split(',').map((a) => a.trim()).filter((a) => a !== ''),
    url: url,
  }
}

/**
 * 返回微信jssdk 所需参数对象
 * @param  {字符串} url 当前访问URL
 * @return {promise}     返回promise类 val为对象
 */
function jsSdk (url, apis) {
  return getJsTicket()
    .then(function (ticket) {
      return sign(ticket, url, apis)
    })
    .catch(function (err) {
      console.log(err)
    })
}

function routerSdk (req, res, next) {
  const clientUrl = req.query.url
  if (clientUrl) {
    jsSdk(clientUrl, req.query.apis)
      .then(function (obj) {
        res.json(obj)
      })
  } else {
    res.end('no url')
  }
}

const app = express()
app.get('/jssdk/:account/config', routerSdk)

redis.connect().then(function () {
  app.listen(config.port, '127.0.0.1', () => {
    console.log(`Server started on localhost:%d (cache: %s)`, config.port, config.cache)
  })
})

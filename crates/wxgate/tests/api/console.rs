//! The admin console (`/admin`): its HTTP contract without a browser ([`http`]: sessions,
//! CSRF, headers, secrets never rendered, paging, keys, settings taking effect) and the
//! click-and-type browser test ([`browser`]: headless Chromium through WebDriver).

mod browser;
mod http;
mod support;

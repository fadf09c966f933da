//! Any bytes into the authorization-event parser must give Ok or Err, never a panic or
//! runaway work; whatever parses must render and read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate_proto::AuthEvent;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = AuthEvent::parse(data) {
        let _ = format!("{event:?}");
        let _ = event.info.authorizer_appid();
        let again = AuthEvent::parse(event.to_xml().as_bytes());
        assert_eq!(again.as_ref(), Ok(&event));
    }
});

//! Any bytes into the XML parsers must give Ok or Err, never a panic or runaway work.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate_proto::{Envelope, Message, Reply};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::parse(data) {
        let _ = message.to_json();
        let _ = message.dedup_key();
        let _ = message.as_event().map(|e| e.qr_scene_id());
    }
    let _ = Envelope::parse(data);
    if let Ok(parsed) = Reply::parse_xml(data) {
        // Whatever parses must render again.
        let _ = parsed
            .reply
            .to_xml(&parsed.to_user, &parsed.from_user, parsed.create_time);
    }
});

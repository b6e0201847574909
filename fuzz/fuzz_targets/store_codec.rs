//! The store's record codec (`store::codec::decode_session`, `decode_state_change`) on arbitrary
//! bytes, as a corrupt or hostile database would hand them over.
//!
//! Invariants: decoding never panics; a record of the current format that decodes re-encodes to
//! exactly its bytes; one of an older format re-encodes to a current record that decodes to the same
//! value; a decoded record names a session other than 0.
#![no_main]

use jvpn_user::store::codec::{
    decode_session, decode_state_change, encode_session, encode_state_change, SESSION_FORMAT,
    STATE_CHANGE_FORMAT,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(session) = decode_session(data) {
        assert_ne!(session.id.get(), 0);
        let encoded = encode_session(&session).expect("a decoded session re-encodes");
        if data[0] == SESSION_FORMAT {
            assert_eq!(
                encoded, data,
                "a current session record re-encodes to its bytes"
            );
        }
        assert_eq!(decode_session(&encoded), Ok(session));
    }
    if let Ok(change) = decode_state_change(data) {
        assert_ne!(change.session.get(), 0);
        let encoded = encode_state_change(&change);
        if data[0] == STATE_CHANGE_FORMAT {
            assert_eq!(
                encoded, data,
                "a current STATE_CHANGE record re-encodes to its bytes"
            );
        }
        assert_eq!(decode_state_change(&encoded), Ok(change));
    }
});

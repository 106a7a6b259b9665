//! Sealed user backups through the SDK (spec §5.5): the code names its user
//! without the passphrase, a wrong passphrase is `DECRYPT_FAILED` and writes
//! nothing, the right one restores the user as a new device (BAK-7).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clientful::{Action, Client, ClientError, backup_owner, is_sealed_backup};
use clientful_core::ErrorClass;

#[test]
fn sealed_backup_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = Client::init(&tmp.path().join("alice"), "alice").unwrap();
    let code = alice
        .profile()
        .backup_sealed("plum vortex gravel orbit")
        .unwrap();
    assert!(is_sealed_backup(&code));
    assert!(!is_sealed_backup(&alice.profile().backup_unsealed()));
    assert_eq!(backup_owner(&code).unwrap(), alice.profile().user_key());

    let err = Client::restore_sealed(&tmp.path().join("x"), &code, "plum vortex gravel orbits")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol {
                what: Action::OpenBackup,
                class: ErrorClass::DecryptFailed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!tmp.path().join("x").join("identity.json").exists());

    let phone =
        Client::restore_sealed(&tmp.path().join("phone"), &code, "plum vortex gravel orbit")
            .unwrap();
    assert_eq!(phone.profile().user_key(), alice.profile().user_key());
    assert_eq!(phone.profile().name, "alice");
    assert_ne!(phone.profile().device_key(), alice.profile().device_key());

    // Two sealings of one user differ (fresh salt and nonce, BAK-2).
    assert_ne!(
        alice
            .profile()
            .backup_sealed("plum vortex gravel orbit")
            .unwrap(),
        code
    );
    // An empty passphrase is refused (BAK-4).
    assert!(alice.profile().backup_sealed("").is_err());
}

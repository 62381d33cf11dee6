//! Sealed artifacts and keyrings: round trips, every bit flip and truncation refused,
//! wrong keys told apart from damage, rotation and slot changes keeping old artifacts
//! open, and golden files of format 1.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use bindspace_crypt::{Argon2Cost, Entropy, Envelope, Error, Keyring, SeededEntropy, SlotSecret};
use proptest::prelude::*;

fn key(seed: u64) -> bindspace_crypt::Key {
    let mut b = [0u8; 32];
    SeededEntropy::new(seed).fill(&mut b).unwrap();
    bindspace_crypt::Key::from_bytes(b)
}

fn pass(p: &str) -> SlotSecret {
    SlotSecret::Passphrase(p.into())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sealed_bytes_open_to_the_plaintext(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        seg in 1024u32..2048,
        seed in any::<u64>(),
    ) {
        let env = Envelope::new(7, seg, &mut SeededEntropy::new(seed)).unwrap();
        let k = key(seed);
        let sealed = env.seal(&k, b"ctx", &data).unwrap();
        prop_assert_eq!(sealed.len() as u64, env.sealed_len(data.len() as u64));
        prop_assert_eq!(Envelope::decode(&sealed).unwrap(), env.clone());
        prop_assert_eq!(env.open(&k, b"ctx", &sealed).unwrap(), data);
    }

    #[test]
    fn every_bit_flip_and_truncation_is_refused(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in any::<prop::sample::Index>(),
    ) {
        let env = Envelope::new(3, 1024, &mut SeededEntropy::new(1)).unwrap();
        let k = key(9);
        let sealed = env.seal(&k, b"ctx", &data).unwrap();
        let open = |bytes: &[u8]| Envelope::decode(bytes).and_then(|e| e.open(&k, b"ctx", bytes));
        let mut bad = sealed.clone();
        bad[flip.index(sealed.len())] ^= 1 << bit;
        prop_assert!(matches!(open(&bad), Err(Error::Corrupt { .. })), "flip accepted");
        let short = &sealed[..cut.index(sealed.len())];
        prop_assert!(open(short).is_err(), "truncation to {} accepted", short.len());
        // one byte more, or a copy under another context: refused
        let mut long = sealed.clone();
        long.push(0);
        prop_assert!(open(&long).is_err());
        prop_assert!(env.open(&k, b"other", &sealed).is_err());
        prop_assert!(env.open(&key(10), b"ctx", &sealed).is_err());
    }
}

#[test]
fn segments_cannot_be_reordered_or_dropped() {
    let env = Envelope::new(1, 1024, &mut SeededEntropy::new(2)).unwrap();
    let k = key(2);
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let sealed = env.seal(&k, b"c", &data).unwrap();
    let seg = 1024 + 16;
    let (head, body) = sealed.split_at(40);
    let mut swapped = head.to_vec();
    swapped.extend_from_slice(&body[seg..2 * seg]);
    swapped.extend_from_slice(&body[..seg]);
    swapped.extend_from_slice(&body[2 * seg..]);
    assert!(env.open(&k, b"c", &swapped).is_err());
    // dropping the last segment leaves a non-last one at the end
    let dropped = &sealed[..40 + 2 * seg];
    let err = env.open(&k, b"c", dropped).unwrap_err();
    assert!(err.to_string().contains("segment 1 of 2"), "{err}");
}

#[test]
fn a_wrong_passphrase_is_not_corruption_and_damage_is_not_a_wrong_passphrase() {
    let mut rng = SeededEntropy::new(5);
    let (ring, keys) =
        Keyring::create("repo", &pass("right"), Argon2Cost::TEST, 1, &mut rng).unwrap();
    let bytes = ring.encode();
    let back = Keyring::decode(&bytes).unwrap();
    assert!(matches!(back.unlock(&pass("wrong")), Err(Error::WrongKey)));
    assert!(matches!(
        back.unlock(&SlotSecret::KeyFile(
            Keyring::new_key_file(&mut rng).unwrap()
        )),
        Err(Error::WrongKey)
    ));
    assert_eq!(
        back.unlock(&pass("right")).unwrap().export_master(),
        keys.export_master()
    );
    // every single-bit flip of the stored keyring: Corrupt, never WrongKey or success
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x04;
        match Keyring::decode(&bad) {
            Err(Error::Corrupt { .. }) => {}
            Ok(r) => panic!("flip at {i} decoded: {:?}", r.slots()),
            Err(e) => panic!("flip at {i}: {e}"),
        }
    }
}

#[test]
fn rotation_retirement_slots_and_a_new_master_keep_every_artifact_that_should_open() {
    let mut rng = SeededEntropy::new(6);
    let (mut ring, mut keys) =
        Keyring::create("repo", &pass("one"), Argon2Cost::TEST, 10, &mut rng).unwrap();
    let a1 = keys.seal(b"full 1", b"epoch one").unwrap();
    assert_eq!(ring.rotate(&mut keys, 20, &mut rng).unwrap(), 2);
    let a2 = keys.seal(b"delta 1..2", b"epoch two").unwrap();
    assert_eq!(bindspace_crypt::Keys::epoch_of(&a1).unwrap(), 1);
    assert_eq!(bindspace_crypt::Keys::epoch_of(&a2).unwrap(), 2);
    // another repository's keys, or another artifact's name: refused
    assert!(keys.open(b"full 2", &a1).is_err());
    let (_, other) =
        Keyring::create("repo-2", &pass("one"), Argon2Cost::TEST, 10, &mut rng).unwrap();
    assert!(other.open(b"full 1", &a1).is_err());
    // a key file slot; the passphrase slot goes; the last slot cannot
    let file = Keyring::new_key_file(&mut rng).unwrap();
    let kf = SlotSecret::KeyFile(file.clone());
    let id = ring
        .add_slot(&keys, &kf, Argon2Cost::TEST, "ops vault", &mut rng)
        .unwrap();
    ring.remove_slot(1).unwrap();
    assert!(matches!(ring.remove_slot(id), Err(Error::Refused(_))));
    let ring = Keyring::decode(&ring.encode()).unwrap();
    assert!(matches!(ring.unlock(&pass("one")), Err(Error::WrongKey)));
    let mut keys = ring.unlock(&kf).unwrap();
    assert_eq!(keys.open(b"full 1", &a1).unwrap(), b"epoch one");
    // a new master: the key file (re-slotted) and the old artifacts still open
    let mut ring = ring;
    let old_master = keys.export_master();
    ring.rotate_master(
        &mut keys,
        &[(kf.clone(), "ops vault".into())],
        Argon2Cost::TEST,
        &mut rng,
    )
    .unwrap();
    assert_ne!(keys.export_master(), old_master);
    assert!(
        ring.rotate_master(
            &mut keys,
            &[(pass("typo"), "x".into())],
            Argon2Cost::TEST,
            &mut rng
        )
        .is_err(),
        "a secret that opens no slot cannot replace the slots"
    );
    let ring = Keyring::decode(&ring.encode()).unwrap();
    let mut keys = ring.unlock(&kf).unwrap();
    assert!(matches!(
        ring.unlock_with_master(&old_master),
        Err(Error::WrongKey)
    ));
    assert_eq!(
        ring.unlock_with_master(&keys.export_master())
            .unwrap()
            .current_epoch(),
        2
    );
    assert_eq!(keys.open(b"full 1", &a1).unwrap(), b"epoch one");
    assert_eq!(keys.open(b"delta 1..2", &a2).unwrap(), b"epoch two");
    // retiring epoch 1 (after re-sealing) leaves a1 unopenable, a2 fine
    let mut ring = ring;
    let resealed = keys
        .seal(b"full 1", &keys.open(b"full 1", &a1).unwrap())
        .unwrap();
    assert!(
        matches!(ring.retire(&mut keys, 2), Err(Error::Refused(_))),
        "current"
    );
    ring.retire(&mut keys, 1).unwrap();
    assert!(matches!(
        keys.open(b"full 1", &a1),
        Err(Error::UnknownEpoch(1))
    ));
    assert_eq!(keys.open(b"full 1", &resealed).unwrap(), b"epoch one");
    let listed = Keyring::decode(&ring.encode()).unwrap().epochs();
    assert_eq!(
        listed
            .iter()
            .map(|e| (e.id, e.current, e.retired))
            .collect::<Vec<_>>(),
        vec![(1, false, true), (2, true, false)]
    );
}

/// Format 1 of the keyring and the sealed envelope, as written by this build from a
/// fixed seed: later builds must open them (and, while format 1 is what they write,
/// write the same bytes).
#[test]
fn golden_files_of_format_1_open() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut rng = SeededEntropy::new(2026);
    let (ring, keys) = Keyring::create(
        "golden-repo",
        &pass("golden passphrase"),
        Argon2Cost::TEST,
        1_795_000_000_000_000,
        &mut rng,
    )
    .unwrap();
    // three segments of 1 KiB (the layout is the same at 1 MiB; the file stays small)
    let plaintext: Vec<u8> = (0..2_500u32).map(|i| (i % 251) as u8).collect();
    let sealed = keys
        .seal_segmented(b"snapshot 1..1 timeline 1", &plaintext, 1024)
        .unwrap();
    if std::env::var_os("BINDSPACE_BLESS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keyring-v1.json"), ring.encode()).unwrap();
        std::fs::write(dir.join("sealed-v1.bin"), &sealed).unwrap();
    }
    let golden_ring = std::fs::read(dir.join("keyring-v1.json")).unwrap();
    let golden_sealed = std::fs::read(dir.join("sealed-v1.bin")).unwrap();
    assert_eq!(
        golden_ring,
        ring.encode(),
        "the keyring format changed: a new format version"
    );
    assert_eq!(
        golden_sealed, sealed,
        "the envelope format changed: a new format version"
    );
    let keys = Keyring::decode(&golden_ring)
        .unwrap()
        .unlock(&pass("golden passphrase"))
        .unwrap();
    assert_eq!(
        keys.open(b"snapshot 1..1 timeline 1", &golden_sealed)
            .unwrap(),
        plaintext
    );
}

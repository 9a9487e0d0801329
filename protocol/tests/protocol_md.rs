//! PROTOCOL.md's example frames are the bytes this crate writes: the
//! document cannot go stale.

#[path = "../examples/frames.rs"]
mod frames;

#[test]
fn protocol_md_examples_match_the_encoder() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md"))
        .expect("PROTOCOL.md at the repository root");
    let expected = frames::render();
    assert!(
        doc.contains(&expected),
        "PROTOCOL.md's example frames are stale; regenerate them with \
         `cargo run -p tally-protocol --example frames` and paste:\n{expected}"
    );
}

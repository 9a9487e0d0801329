//! Fuzzing of frame and message decoding (proptest): whatever bytes a peer
//! sends, reading them never panics, never overflows the stack, and never
//! allocates more than the frame limit for the frame plus a bounded amount
//! for the decoded message.
//!
//! Inputs: arbitrary byte streams; the example frames of PROTOCOL.md (every
//! message kind, kept true by `protocol_md.rs`) with bytes flipped, cut and
//! inserted; MessagePack trees made of the protocol's own field and variant
//! names, so the decoder gets deep into every message type; lengths that
//! claim more than the stream holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use tally_protocol::frame::{decode, FrameReader};
use tally_protocol::{Error, FromWorker, PackedPartial, ToWorker};

// ---------------------------------------------------------------------------
// Allocation accounting: live bytes allocated by this thread while tracking
// is on, and their peak.

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn account(grow: usize, shrink: usize) {
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let live = LIVE.with(|l| {
                let v = l.get().saturating_add(grow).saturating_sub(shrink);
                l.set(v);
                v
            });
            PEAK.with(|p| p.set(p.get().max(live)));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// accounting touches only const-initialised thread-locals, which neither
// allocate nor have destructors.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size(), 0);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(0, layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size(), 0);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size, layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the peak of the bytes it held.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, PEAK.with(Cell::get))
}

/// The frame limit of these tests.
const MAX: u32 = 64 << 10;

/// What decoding may hold on top of the frame: serde preallocates at most
/// 1 MiB for a sequence whatever length it claims ("cautious" size hints),
/// and the messages nest a few sequences deep.
const DECODE_SLACK: usize = 4 << 20;

/// Reads every frame of `wire` as `T` until the end or the first error, as
/// the coordinator's and the worker's reader threads do; checks the bounds.
fn read_all<T: serde::de::DeserializeOwned>(wire: &[u8]) {
    let (_, peak) = peak_of(|| {
        let mut reader = FrameReader::new(wire, MAX);
        // At most one message per 4 bytes: the loop ends.
        for _ in 0..=wire.len() / 4 {
            match reader.read_message::<T>() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    });
    assert!(
        peak <= MAX as usize + DECODE_SLACK,
        "reading {} bytes held {peak} bytes",
        wire.len()
    );
}

/// Both directions.
fn read_both(wire: &[u8]) {
    read_all::<ToWorker>(wire);
    read_all::<FromWorker>(wire);
    // As the coordinator reads results: partials as groups or columns.
    read_all::<FromWorker<PackedPartial>>(wire);
}

/// One frame around `body`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut wire = (body.len() as u32).to_le_bytes().to_vec();
    wire.extend_from_slice(body);
    wire
}

/// The example frames of PROTOCOL.md: one per message kind (each code
/// block made only of hex bytes is one frame).
fn example_frames() -> Vec<Vec<u8>> {
    let doc = include_str!("../../PROTOCOL.md");
    let mut frames = Vec::new();
    let mut in_block = false;
    let mut only_hex = true;
    let mut current = Vec::new();
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            if in_block && only_hex && !current.is_empty() {
                frames.push(std::mem::take(&mut current));
            }
            current.clear();
            only_hex = true;
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens
            .iter()
            .all(|t| t.len() == 2 && t.chars().all(|c| c.is_ascii_hexdigit()))
        {
            current.extend(tokens.iter().map(|t| u8::from_str_radix(t, 16).unwrap()));
        } else {
            only_hex = false;
        }
    }
    assert!(
        frames.len() >= 6,
        "PROTOCOL.md has {} example frames",
        frames.len()
    );
    frames
}

// ---------------------------------------------------------------------------
// MessagePack trees keyed by the protocol's own names.

const NAMES: &[&str] = &[
    "hello",
    "prepare",
    "task",
    "shutdown",
    "result",
    "task_error",
    "protocol_version",
    "worker_version",
    "pid",
    "kernels",
    "task_id",
    "query_id",
    "query",
    "source",
    "file_range",
    "inline",
    "path",
    "start",
    "end",
    "start_in_quotes",
    "name",
    "first_line",
    "bytes",
    "partial",
    "counters",
    "bad_samples",
    "groups",
    "key",
    "rows",
    "values",
    "count",
    "sum_scaled",
    "scale",
    "sum_float",
    "min",
    "max",
    "m2",
    "records",
    "bad_records",
    "quotes",
    "kind",
    "message",
    "location",
    "line",
    "byte_offset",
    "kernel",
    "input",
    "group_by",
    "aggregates",
    "on_error",
    "delimiter",
    "quote",
    "header",
    "columns",
    "func",
    "column",
    "fail",
    "skip",
    "input",
    "io",
    "internal",
    "mean",
    "stddev",
];

#[derive(Debug, Clone)]
enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Name(usize),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// A container header claiming `n` entries with none behind it.
    Claim {
        array: bool,
        n: u32,
    },
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::Uint),
        any::<f64>().prop_map(Value::Float),
        ".{0,12}".prop_map(Value::Str),
        (0..NAMES.len()).prop_map(Value::Name),
        (0..NAMES.len()).prop_map(Value::Name),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bin),
        (any::<bool>(), any::<u32>()).prop_map(|(array, n)| Value::Claim { array, n }),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                ((0..NAMES.len()).prop_map(Value::Name), inner.clone()),
                0..6
            )
            .prop_map(Value::Map),
            // A one-entry map {variant: body}, as enums are encoded.
            ((0..NAMES.len()).prop_map(Value::Name), inner)
                .prop_map(|(k, v)| Value::Map(vec![(k, v)])),
        ]
    })
}

fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) if (0..128).contains(i) => out.push(*i as u8),
        Value::Int(i) => {
            out.push(0xd3);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Uint(u) => {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
        Value::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => encode_str(s, out),
        Value::Name(i) => encode_str(NAMES[*i], out),
        Value::Bin(b) => {
            out.push(0xc5);
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            out.push(0xdc);
            out.extend_from_slice(&(items.len() as u16).to_be_bytes());
            items.iter().for_each(|i| encode(i, out));
        }
        Value::Map(entries) => {
            out.push(0xde);
            out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
            for (k, v) in entries {
                encode(k, out);
                encode(v, out);
            }
        }
        Value::Claim { array, n } => {
            out.push(if *array { 0xdd } else { 0xdf });
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.push(0xda);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any byte stream at all.
    #[test]
    fn arbitrary_streams(wire in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_both(&wire);
    }

    /// A well-formed frame around arbitrary bytes.
    #[test]
    fn arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_both(&framed(&body));
    }

    /// The example frames with bytes flipped, then cut short or extended.
    #[test]
    fn mutated_example_frames(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
        cut_it in any::<bool>(),
    ) {
        let frames = example_frames();
        let mut wire = frames[pick.index(frames.len())].clone();
        for (at, byte) in flips {
            let i = at.index(wire.len());
            // Keep the length prefix sane half of the time.
            if i >= 4 || byte & 1 == 0 {
                wire[i] ^= byte;
            }
        }
        if cut_it {
            wire.truncate(cut.index(wire.len() + 1));
        }
        wire.extend_from_slice(&tail);
        read_both(&wire);
    }

    /// Well-formed MessagePack with the protocol's names in it, as a frame.
    #[test]
    fn structured_messages(v in value()) {
        let mut body = Vec::new();
        encode(&v, &mut body);
        read_both(&framed(&body));
        // Also decoded straight from the body, as `decode` is public.
        let _ = decode::<ToWorker>(&body);
        let _ = decode::<FromWorker>(&body);
    }

    /// A length prefix over the limit is refused before anything is
    /// allocated for it; one under the limit with a short stream is
    /// "truncated", holding no more than the limit.
    #[test]
    fn lengths_that_lie(len in any::<u32>(), have in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut wire = len.to_le_bytes().to_vec();
        wire.extend_from_slice(&have);
        let (result, peak) = peak_of(|| {
            let mut reader = FrameReader::new(&wire[..], MAX);
            reader.read_frame().map(|f| f.map(<[u8]>::len))
        });
        if len > MAX {
            prop_assert!(
                matches!(result, Err(Error::FrameTooLarge { .. })),
                "expected FrameTooLarge, got {:?}",
                result
            );
            prop_assert!(peak < 1024, "{} bytes held for a refused frame", peak);
        } else if (len as usize) > have.len() {
            prop_assert!(matches!(result, Err(Error::Truncated { .. })), "{:?}", result);
            prop_assert!(peak <= MAX as usize);
        } else {
            prop_assert_eq!(result.unwrap(), Some(len as usize));
        }
    }
}

/// Deep nesting inside a field the decoder skips, or inside a key: an
/// error, not a stack overflow.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [100usize, 10_000, 60_000] {
        for wrap in [
            &b"\x81\xa5hello\x81\xa1x"[..],
            &b"\x81\xa6result\x81\xa7partial\x81\xa6groups"[..],
        ] {
            let mut body = wrap.to_vec();
            body.extend(std::iter::repeat_n(0x91u8, depth)); // [[[[...
            body.push(0xc0);
            read_both(&framed(&body));
        }
    }
}

/// Sequences that claim four billion entries preallocate a bounded amount.
#[test]
fn huge_claimed_lengths_do_not_preallocate() {
    // {"result": {"task_id": 1, "partial": {"groups": <array of 2^32-1>}}}
    let mut body = b"\x81\xa6result\x82\xa7task_id\x01\xa7partial\x81\xa6groups".to_vec();
    body.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
    let (_, peak) = peak_of(|| decode::<FromWorker>(&body).is_err());
    assert!(peak <= DECODE_SLACK, "held {peak} bytes");
}

/// The fuzzing above means something only if the accounting counts and the
/// seeds are valid messages.
#[test]
fn accounting_counts_and_examples_decode() {
    let (v, peak) = peak_of(|| vec![7u8; 100_000]);
    assert!(peak >= 100_000, "peak {peak}");
    drop(v);
    for frame in example_frames() {
        let mut to = FrameReader::new(&frame[..], MAX);
        let mut from = FrameReader::new(&frame[..], MAX);
        assert!(
            matches!(to.read_message::<ToWorker>(), Ok(Some(_)))
                || matches!(
                    from.read_message::<FromWorker<PackedPartial>>(),
                    Ok(Some(_))
                ),
            "example frame does not decode: {frame:02x?}"
        );
    }
    // A sequence claiming 2^32 - 1 entries: serde preallocates a little,
    // and the accounting sees it.
    let mut body = b"\x81\xa6result\x82\xa7task_id\x01\xa7partial\x81\xa6groups".to_vec();
    body.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
    let (_, peak) = peak_of(|| decode::<FromWorker>(&body).is_err());
    eprintln!("a claimed 4-billion-entry sequence held {peak} bytes");
}

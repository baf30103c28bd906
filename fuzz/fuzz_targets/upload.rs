//! The upload validator: the header check that refuses a non-component from its first
//! bytes must decide as the check of the whole header does, however the bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhost::fuzzing::fuzz_upload_header;

fuzz_target!(|data: &[u8]| {
    let (cuts, bytes) = data.split_at(data.len().min(3));
    let cuts: Vec<usize> = cuts.iter().map(|b| usize::from(*b % 12)).collect();
    fuzz_upload_header(bytes, &cuts);
    // Most inputs start like a component, so the interesting bytes are past the magic.
    let mut component = b"\0asm".to_vec();
    component.extend_from_slice(bytes);
    fuzz_upload_header(&component, &cuts);
});

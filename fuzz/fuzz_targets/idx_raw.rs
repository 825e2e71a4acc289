//! The IDX reader on raw (uncompressed) bytes: images, labels, and a whole
//! data set from two parts of the input. Never a panic, never an allocation
//! above the cap; whatever loads holds exactly what the header promised.
#![no_main]

use cnn_loaders_fuzz::CappedAllocator;
use cnn_runtime::data;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|bytes: &[u8]| {
    // Gzip magic would select the decoder: that is the other target.
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return;
    }
    if let Ok((pixels, rows, cols)) = data::parse_idx_images(bytes, "fuzz") {
        assert_eq!(16 + pixels.len(), bytes.len());
        assert!(rows > 0 && cols > 0 && pixels.len() % (rows * cols) == 0);
    }
    if let Ok(labels) = data::parse_idx_labels(bytes, "fuzz") {
        assert_eq!(8 + labels.len(), bytes.len());
    }
    // The first byte says where the images end and the labels begin.
    if let Some((&cut, rest)) = bytes.split_first() {
        let (images, labels) = rest.split_at(usize::from(cut) * rest.len() / 256);
        if let Ok(set) = data::from_idx_bytes(images, labels, "fuzz") {
            assert_eq!(set.images.len(), set.len() * set.image_len());
            assert!(set.labels.iter().all(|&l| usize::from(l) < data::NUM_CLASSES));
            assert!(set.images.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }
});

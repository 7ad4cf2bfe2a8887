//! Image decoding with limits checked before any pixel is allocated.
//!
//! A "pixel bomb" is a small file whose header declares huge dimensions (a 100 KB PNG of
//! 100000×100000 pixels would need 30 GB decoded). The header is read first and its dimensions
//! checked against [`Limits`]; the decoder then runs with the `image` crate's own allocation limit
//! as a second guard, so memory stays bounded whatever the file claims. Corrupt, truncated and
//! unknown files are refused with a message that says which.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, RgbImage};

use oxserve_core::{EngineError, Result};

/// Bounds on one decoded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Widest image accepted, in pixels.
    pub max_width: u32,
    /// Tallest image accepted, in pixels.
    pub max_height: u32,
    /// Most pixels (width × height) accepted: bounds the decoded size of a wide *and* tall image.
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate for one image.
    pub max_alloc: u64,
}

impl Default for Limits {
    /// 16384 pixels a side, 25 megapixels (75 MB as 8-bit RGB), 256 MiB of decoder memory: larger
    /// than any camera photo a classifier is sent, far below what a bomb asks for.
    fn default() -> Self {
        Self { max_width: 16_384, max_height: 16_384, max_pixels: 25_000_000, max_alloc: 256 << 20 }
    }
}

/// A decoded image and what it was.
#[derive(Debug)]
pub struct Decoded {
    /// 8-bit RGB pixels (alpha dropped, grey expanded, 16-bit reduced), as PIL's `convert("RGB")`.
    pub rgb: RgbImage,
    /// The file format found from its first bytes.
    pub format: ImageFormat,
}

/// Decodes one image file (JPEG, PNG, GIF, BMP, WebP, TIFF), found by its content, not its name.
///
/// # Errors
/// [`EngineError::InvalidInput`] for an unknown format, dimensions over `limits`, or a corrupt or
/// truncated file.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded> {
    // Reading the header allocates no pixels; the decoder's own limits apply to the decode below,
    // after our check, so that the refusal names the limit that was passed.
    let reader = |image_limits: image::Limits| -> Result<ImageReader<Cursor<&[u8]>>> {
        let mut reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| invalid(format!("cannot read the image: {e}")))?;
        reader.limits(image_limits);
        Ok(reader)
    };
    let first = reader(image::Limits::no_limits())?;
    let Some(format) = first.format() else {
        return Err(invalid(format!(
            "the input is not an image in a supported format (JPEG, PNG, GIF, BMP, WebP, TIFF); \
             its first bytes are {}",
            hex_prefix(bytes)
        )));
    };
    let (width, height) = first.into_dimensions().map_err(|e| describe(format, &e))?;
    check_dimensions(width, height, limits)?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(invalid(
            "the JPEG image is truncated (no end-of-image marker after its last scan)".into(),
        ));
    }
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    image_limits.max_alloc = Some(limits.max_alloc);
    let image = reader(image_limits)?.decode().map_err(|e| describe(format, &e))?;
    let rgb = match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    Ok(Decoded { rgb, format })
}

/// Refuses dimensions over the limits, before decoding.
///
/// # Errors
/// [`EngineError::InvalidInput`] naming the limit that was passed.
pub fn check_dimensions(width: u32, height: u32, limits: &Limits) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(invalid(format!("the image is empty ({width}x{height} pixels)")));
    }
    if width > limits.max_width || height > limits.max_height {
        return Err(invalid(format!(
            "the image is {width}x{height} pixels, larger than the limit of {}x{} \
             (handler.max_image_width / max_image_height)",
            limits.max_width, limits.max_height
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(invalid(format!(
            "the image is {width}x{height} = {pixels} pixels, more than the limit of {} \
             (handler.max_image_pixels)",
            limits.max_pixels
        )));
    }
    Ok(())
}

/// Whether a JPEG file has its end-of-image marker (`FF D9`) after the start of its last scan
/// (`FF DA`). The JPEG decoder fills a cut-off scan with grey instead of failing, so a truncated
/// upload would otherwise be classified as if whole; PIL refuses such files too. Entropy-coded
/// data cannot hold either marker (an `FF` there is followed by `00` or a restart marker), and an
/// EXIF thumbnail's markers come before the main image's last scan.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_scan.is_some_and(|at| bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

fn describe(format: ImageFormat, error: &image::ImageError) -> EngineError {
    use image::ImageError;
    let name = format!("{format:?}").to_uppercase();
    match error {
        ImageError::Limits(e) => invalid(format!(
            "the {name} image needs more memory to decode than allowed (handler.max_decode_bytes): {e}"
        )),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            invalid(format!("the {name} image is truncated"))
        }
        ImageError::Unsupported(e) => {
            invalid(format!("the {name} image uses an unsupported feature: {e}"))
        }
        other => invalid(format!("the {name} image is corrupt or truncated: {other}")),
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(none: the input is empty)".into();
    }
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn invalid(message: String) -> EngineError {
    EngineError::InvalidInput(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).expect("encode");
        out.into_inner()
    }

    fn message(result: Result<Decoded>) -> String {
        match result {
            Err(EngineError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    /// A PNG whose header declares `width`×`height` but whose data is one tiny compressed block:
    /// a pixel bomb of a few dozen bytes.
    fn bomb(width: u32, height: u32) -> Vec<u8> {
        let mut file = png(1, 1);
        // IHDR data starts at byte 16: width then height, big-endian; its CRC follows at 29.
        file[16..20].copy_from_slice(&width.to_be_bytes());
        file[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&file[12..29]);
        file[29..33].copy_from_slice(&crc.to_be_bytes());
        file
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    proptest::proptest! {
        /// Whatever bytes arrive, and however a real file is damaged, decoding answers (an image
        /// or an error) without panicking.
        #[test]
        fn damaged_files_never_panic(
            format in proptest::sample::select(vec![
                ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::Bmp,
                ImageFormat::WebP, ImageFormat::Tiff,
            ]),
            flips in proptest::collection::vec((0usize..4096, 1u8..=255), 0..8),
            cut in 0usize..4096,
        ) {
            let image = RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 99]));
            let mut file = Cursor::new(Vec::new());
            image.write_to(&mut file, format).expect("encode");
            let mut file = file.into_inner();
            for (at, xor) in flips {
                let at = at % file.len();
                file[at] ^= xor;
            }
            file.truncate(cut.max(1));
            let _ = decode(&file, &Limits::default());
        }
    }

    #[test]
    fn decodes_png_to_rgb() {
        let decoded = decode(&png(5, 3), &Limits::default()).expect("decode");
        assert_eq!(decoded.format, ImageFormat::Png);
        assert_eq!(decoded.rgb.dimensions(), (5, 3));
        assert_eq!(decoded.rgb.get_pixel(4, 2).0, [4, 2, 7]);
    }

    #[test]
    fn pixel_bombs_are_refused_before_decoding() {
        let m = message(decode(&bomb(100_000, 100_000), &Limits::default()));
        assert!(m.contains("100000x100000") && m.contains("limit"), "{m}");
        let m = message(decode(&bomb(10_000, 10_000), &Limits::default()));
        assert!(m.contains("max_image_pixels"), "{m}");
    }

    #[test]
    fn corrupt_truncated_and_unknown_inputs_are_refused() {
        let file = png(64, 64);
        let m = message(decode(&file[..file.len() / 2], &Limits::default()));
        assert!(m.contains("PNG"), "{m}");
        let jpeg = {
            let image = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8, y as u8, 7]));
            let mut out = Cursor::new(Vec::new());
            image.write_to(&mut out, ImageFormat::Jpeg).expect("encode");
            out.into_inner()
        };
        assert!(decode(&jpeg, &Limits::default()).is_ok());
        let m = message(decode(&jpeg[..jpeg.len() - 40], &Limits::default()));
        assert!(m.contains("JPEG image is truncated"), "{m}");
        let m = message(decode(b"hello, not an image", &Limits::default()));
        assert!(m.contains("not an image"), "{m}");
        let mut corrupt = file;
        for b in &mut corrupt[40..60] {
            *b ^= 0x5a;
        }
        let m = message(decode(&corrupt, &Limits::default()));
        assert!(m.contains("PNG"), "{m}");
    }
}

//! Images attached to a chat message (attach, paste or drop): checking them and preparing them
//! for the vision model.
//!
//! This module owns the answer to "would the app accept this image, and what would the model
//! see?" ([`inspect_bytes`], [`inspect_file`], behind `deskmate image-check FILE`) and the
//! preparation of an accepted image ([`prepare_bytes`], [`prepare_file`]).
//!
//! Invariants:
//! - Only PNG, JPEG, WebP and GIF are accepted, recognised by their magic bytes, never by the
//!   file name; anything else is [`Error::Vision(VisionError::ImageUnsupported)`] saying what it looks like.
//! - Nothing is decoded before the file size and the header's dimensions are checked against
//!   [`ImageLimits`], and the decoder itself runs under `image::Limits`, so a decompression
//!   bomb or a lying header is refused ([`Error::Vision(VisionError::ImageTooLarge)`]) without allocating its pixels.
//! - Every accepted image has been decoded in full, so a corrupt or truncated file is
//!   [`Error::Vision(VisionError::ImageCorrupt)`] at check time, not later in the model.
//! - Only the first frame of an animated GIF or WebP is used, and the caller is told so.
//! - Images are only ever scaled down, keeping their aspect ratio; EXIF orientation is applied.
//! - Transparency is flattened onto white for the model and kept in the thumbnail.
//! - Errors always carry the user's file name (never a path), so the UI can show them as is.
//! - No input makes this module panic.
//!
//! Everything here is blocking and CPU-bound: call it from a worker thread or `spawn_blocking`.

use crate::error::VisionError;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{
    DynamicImage, ExtendedColorType, GenericImageView, ImageDecoder, ImageEncoder, ImageError,
    ImageFormat, ImageReader, RgbImage, RgbaImage,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The long side, in pixels, of the thumbnail shown in the conversation.
pub const THUMBNAIL_SIDE: u32 = 256;

/// The long side, in pixels, of the image the vision model sees unless the caller asks for
/// another.
pub const DEFAULT_MODEL_SIDE: u32 = 896;

const MIB: u64 = 1024 * 1024;

/// The widest pixel these four formats decode to (16-bit RGBA PNG), for the allocation bound.
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Decoder working memory on top of the pixel buffer (Huffman tables, zlib window, palettes).
const DECODER_ALLOC_MARGIN: u64 = 64 * MIB;

/// Above this ratio between the source and the target, a cheap area-averaging pass comes first:
/// Lanczos over the full source costs seconds on a 40-megapixel photo and gains nothing visible.
const PREFILTER_RATIO: u32 = 2;

/// What an attached image may be, checked before anything is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// The largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// The most pixels (width × height) an image may have.
    pub max_pixels: u64,
    /// The longest side an image may have, in pixels.
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_file_bytes: 20 * MIB,
            max_pixels: 40_000_000,
            max_side: 16_384,
        }
    }
}

impl ImageLimits {
    /// The bound the decoder runs under, in case the header lies about the image.
    fn decoder_limits(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_alloc());
        limits
    }

    /// The header is read before its dimensions are known, so only memory bounds it.
    fn header_limits(&self) -> image::Limits {
        let mut limits = image::Limits::no_limits();
        limits.max_alloc = Some(self.max_alloc());
        limits
    }

    fn max_alloc(&self) -> u64 {
        self.max_pixels
            .saturating_mul(MAX_BYTES_PER_PIXEL)
            .saturating_add(DECODER_ALLOC_MARGIN)
    }
}

/// The image formats the app accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormatKind {
    Png,
    Jpeg,
    Webp,
    Gif,
}

impl ImageFormatKind {
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormatKind::Png => "image/png",
            ImageFormatKind::Jpeg => "image/jpeg",
            ImageFormatKind::Webp => "image/webp",
            ImageFormatKind::Gif => "image/gif",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageFormatKind::Png => "png",
            ImageFormatKind::Jpeg => "jpg",
            ImageFormatKind::Webp => "webp",
            ImageFormatKind::Gif => "gif",
        }
    }

    fn from_image_format(format: ImageFormat) -> Option<Self> {
        match format {
            ImageFormat::Png => Some(ImageFormatKind::Png),
            ImageFormat::Jpeg => Some(ImageFormatKind::Jpeg),
            ImageFormat::WebP => Some(ImageFormatKind::Webp),
            ImageFormat::Gif => Some(ImageFormatKind::Gif),
            _ => None,
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            ImageFormatKind::Png => ImageFormat::Png,
            ImageFormatKind::Jpeg => ImageFormat::Jpeg,
            ImageFormatKind::Webp => ImageFormat::WebP,
            ImageFormatKind::Gif => ImageFormat::Gif,
        }
    }

    fn label(self) -> &'static str {
        match self {
            ImageFormatKind::Png => "PNG",
            ImageFormatKind::Jpeg => "JPEG",
            ImageFormatKind::Webp => "WebP",
            ImageFormatKind::Gif => "GIF",
        }
    }
}

/// What the app would accept and how it would scale it. Dimensions are as displayed, after the
/// EXIF orientation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    pub name: String,
    pub format: ImageFormatKind,
    pub mime: &'static str,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
    /// Set when only part of the file is used, e.g. the first frame of an animation.
    pub frames_note: Option<String>,
    pub model_width: u32,
    pub model_height: u32,
    pub thumbnail_width: u32,
    pub thumbnail_height: u32,
}

/// An accepted image, ready to store and to give to the model.
#[derive(Clone)]
pub struct PreparedImage {
    pub info: ImageInfo,
    /// Lowercase hex SHA-256 of `original`.
    pub sha256: String,
    /// The bytes as the user gave them, unchanged.
    pub original: Vec<u8>,
    /// PNG, long side at most [`THUMBNAIL_SIDE`], with the image's transparency.
    pub thumbnail_png: Vec<u8>,
    /// What the model sees: long side at most the model side, transparency flattened on white.
    pub model_rgb: RgbImage,
}

impl std::fmt::Debug for PreparedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The byte buffers would flood a log; their sizes say enough.
        f.debug_struct("PreparedImage")
            .field("info", &self.info)
            .field("sha256", &self.sha256)
            .field("original_bytes", &self.original.len())
            .field("thumbnail_png_bytes", &self.thumbnail_png.len())
            .field("model_rgb", &self.model_rgb.dimensions())
            .finish()
    }
}

/// Checks an image fully (header, limits and a full decode) without keeping anything.
///
/// `name` is what the user calls the image (its file name, or e.g. "pasted image"); it is
/// reported as is in [`ImageInfo::name`] and in errors. `model_side` is the long side the model
/// sees, usually [`DEFAULT_MODEL_SIDE`].
pub fn inspect_bytes(
    name: &str,
    bytes: &[u8],
    limits: &ImageLimits,
    model_side: u32,
) -> Result<ImageInfo> {
    let decoded = decode(name, bytes, limits)?;
    Ok(describe(name, bytes, &decoded, model_side))
}

/// [`inspect_bytes`] for a file; an oversized file is refused before it is read.
pub fn inspect_file(path: &Path, limits: &ImageLimits, model_side: u32) -> Result<ImageInfo> {
    let bytes = read_limited(path, limits)?;
    inspect_bytes(&file_name(path), &bytes, limits, model_side)
}

/// Checks an image like [`inspect_bytes`] and makes its thumbnail and model input.
pub fn prepare_bytes(
    name: &str,
    bytes: &[u8],
    limits: &ImageLimits,
    model_side: u32,
) -> Result<PreparedImage> {
    let decoded = decode(name, bytes, limits)?;
    let info = describe(name, bytes, &decoded, model_side);
    let has_alpha = decoded.image.color().has_alpha();
    let working = working_image(decoded, info.model_width, info.model_height);
    let model_rgb = flatten_on_white(&resize(&working, info.model_width, info.model_height));
    let thumbnail = resize(&working, info.thumbnail_width, info.thumbnail_height);
    let thumbnail_png = encode_thumbnail(name, thumbnail, has_alpha)?;
    Ok(PreparedImage {
        sha256: hex::encode(Sha256::digest(bytes)),
        original: bytes.to_vec(),
        thumbnail_png,
        model_rgb,
        info,
    })
}

/// [`prepare_bytes`] for a file; an oversized file is refused before it is read.
pub fn prepare_file(path: &Path, limits: &ImageLimits, model_side: u32) -> Result<PreparedImage> {
    let bytes = read_limited(path, limits)?;
    prepare_bytes(&file_name(path), &bytes, limits, model_side)
}

// --- reading ---

fn file_name(path: &Path) -> String {
    match path.file_name() {
        Some(name) => name.to_string_lossy().into_owned(),
        None => path.display().to_string(),
    }
}

/// Reads at most one byte over the limit, so a file that grows, or whose metadata reports no
/// size (pipes, /proc), still cannot make us read it all.
fn read_limited(path: &Path, limits: &ImageLimits) -> Result<Vec<u8>> {
    let io_error = |source| Error::io(path, source);
    let file = File::open(path).map_err(io_error)?;
    let declared = file.metadata().map_err(io_error)?.len();
    check_file_size(&file_name(path), declared, limits)?;
    let mut bytes = Vec::new();
    file.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    Ok(bytes)
}

fn check_file_size(name: &str, size: u64, limits: &ImageLimits) -> Result<()> {
    if size <= limits.max_file_bytes {
        return Ok(());
    }
    Err(Error::Vision(VisionError::ImageTooLarge {
        name: name.to_owned(),
        reason: format!(
            "the file is {}, over the limit of {}",
            format_bytes(size),
            format_bytes(limits.max_file_bytes)
        ),
    }))
}

// --- format detection ---

fn detect_format(name: &str, bytes: &[u8]) -> Result<ImageFormatKind> {
    image::guess_format(bytes)
        .ok()
        .and_then(ImageFormatKind::from_image_format)
        .ok_or_else(|| {
            Error::Vision(VisionError::ImageUnsupported {
                name: name.to_owned(),
                detail: describe_unsupported(bytes),
            })
        })
}

/// Names what the user gave us, so the refusal says more than "unsupported".
fn describe_unsupported(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "an empty file".to_owned();
    }
    if let Ok(format) = image::guess_format(bytes) {
        return describe_other_image_format(format);
    }
    let detail = if bytes.starts_with(b"%PDF-") {
        "a PDF document"
    } else if is_heif(bytes) {
        "a HEIC/HEIF image"
    } else if bytes.starts_with(b"PK\x03\x04") {
        "a ZIP archive or Office document"
    } else if is_svg(bytes) {
        "an SVG image"
    } else if looks_like_text(bytes) {
        "text"
    } else {
        "unknown data"
    };
    detail.to_owned()
}

fn describe_other_image_format(format: ImageFormat) -> String {
    let detail = match format {
        ImageFormat::Bmp => "a BMP image",
        ImageFormat::Tiff => "a TIFF image",
        ImageFormat::Ico => "an ICO icon",
        ImageFormat::Avif => "an AVIF image",
        ImageFormat::Dds => "a DDS texture",
        ImageFormat::Hdr => "a Radiance HDR image",
        ImageFormat::OpenExr => "an OpenEXR image",
        ImageFormat::Qoi => "a QOI image",
        ImageFormat::Pnm => "a PNM image",
        ImageFormat::Farbfeld => "a farbfeld image",
        _ => "an image in another format",
    };
    detail.to_owned()
}

fn is_heif(bytes: &[u8]) -> bool {
    let brand = bytes.get(4..12);
    [
        b"ftypheic",
        b"ftypheix",
        b"ftyphevc",
        b"ftypmif1",
        b"ftypmsf1",
    ]
    .iter()
    .any(|known| brand == Some(&known[..]))
}

fn is_svg(bytes: &[u8]) -> bool {
    let head = text_head(bytes);
    let start = head.trim_start_matches('\u{feff}').trim_start();
    (start.starts_with("<svg") || start.starts_with("<?xml") || start.starts_with("<!DOCTYPE svg"))
        && head.contains("<svg")
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = text_head(bytes);
    !head.is_empty()
        && head
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

/// The valid UTF-8 start of the first KiB: a cut multi-byte character at the end is dropped, but
/// invalid UTF-8 earlier gives nothing, so binary data is not mistaken for text.
fn text_head(bytes: &[u8]) -> &str {
    let head = &bytes[..bytes.len().min(1024)];
    match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => "",
    }
}

// --- decoding ---

struct Decoded {
    format: ImageFormatKind,
    /// As stored in the file, before `orientation`.
    image: DynamicImage,
    orientation: Orientation,
}

fn decode(name: &str, bytes: &[u8], limits: &ImageLimits) -> Result<Decoded> {
    check_file_size(name, len_u64(bytes), limits)?;
    let format = detect_format(name, bytes)?;
    if format == ImageFormatKind::Jpeg {
        check_jpeg_complete(name, bytes)?;
    }
    let fail = |error| image_error(name, format, limits, error);
    let mut decoder = open_decoder(bytes, format, limits).map_err(fail)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(name, width, height, limits)?;
    bound_decoder(&mut decoder, limits).map_err(fail)?;
    // A broken EXIF block should not cost the user their photo: it is shown unrotated.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    Ok(Decoded {
        format,
        image,
        orientation,
    })
}

/// Parses only the header: no pixel is decoded yet.
fn open_decoder<'a>(
    bytes: &'a [u8],
    format: ImageFormatKind,
    limits: &ImageLimits,
) -> image::ImageResult<impl ImageDecoder + 'a> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(limits.header_limits());
    reader.into_decoder()
}

/// `DynamicImage::from_decoder` does not reserve the pixel buffer against the limits (only
/// `ImageReader::decode` does), so reserve it here before anything is allocated.
fn bound_decoder(decoder: &mut impl ImageDecoder, limits: &ImageLimits) -> image::ImageResult<()> {
    let bound = limits.decoder_limits();
    decoder.set_limits(bound.clone())?;
    let mut budget = bound;
    budget.reserve(decoder.total_bytes())
}

fn check_dimensions(name: &str, width: u32, height: u32, limits: &ImageLimits) -> Result<()> {
    let too_large = |reason| {
        Err(Error::Vision(VisionError::ImageTooLarge {
            name: name.to_owned(),
            reason,
        }))
    };
    if width == 0 || height == 0 {
        return Err(Error::Vision(VisionError::ImageCorrupt {
            name: name.to_owned(),
            reason: format!("the header gives a size of {width} × {height} pixels"),
        }));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return too_large(format!(
            "{width} × {height} pixels is over the limit of {} pixels",
            group_digits(limits.max_pixels)
        ));
    }
    if width.max(height) > limits.max_side {
        return too_large(format!(
            "{width} × {height} pixels: a side is over the limit of {} pixels",
            group_digits(u64::from(limits.max_side))
        ));
    }
    Ok(())
}

fn image_error(
    name: &str,
    format: ImageFormatKind,
    limits: &ImageLimits,
    error: ImageError,
) -> Error {
    let name = name.to_owned();
    match error {
        ImageError::Limits(limit) => Error::Vision(VisionError::ImageTooLarge {
            name,
            reason: format!(
                "decoding it would go over the limits ({} per side, {} of memory): {limit}",
                group_digits(u64::from(limits.max_side)),
                format_bytes(limits.max_alloc())
            ),
        }),
        ImageError::Unsupported(unsupported) => Error::Vision(VisionError::ImageUnsupported {
            name,
            detail: format!("this kind of {} ({unsupported})", format.label()),
        }),
        // Decoding, I/O on an in-memory cursor (unexpected end) and parameter errors all mean
        // the data is not a whole, valid image.
        other => Error::Vision(VisionError::ImageCorrupt {
            name,
            reason: other.to_string(),
        }),
    }
}

/// The JPEG decoder fills a cut-short image with grey instead of failing, so walk the marker
/// segments and require the end-of-image marker of the main image. Segments are skipped by
/// length, so the end marker of an embedded EXIF thumbnail does not count.
fn check_jpeg_complete(name: &str, bytes: &[u8]) -> Result<()> {
    if jpeg_has_end_marker(bytes) {
        return Ok(());
    }
    Err(Error::Vision(VisionError::ImageCorrupt {
        name: name.to_owned(),
        reason: "the JPEG data stops before its end-of-image marker (the file is cut short)"
            .to_owned(),
    }))
}

fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    const END_OF_IMAGE: u8 = 0xD9;
    const START_OF_SCAN: u8 = 0xDA;
    let mut pos = 2; // after the start-of-image marker
    loop {
        let Some(marker_at) = next_marker(bytes, pos) else {
            return false;
        };
        let Some(&marker) = bytes.get(marker_at + 1) else {
            return false;
        };
        if marker == END_OF_IMAGE {
            return true;
        }
        if is_standalone_marker(marker) {
            pos = marker_at + 2;
            continue;
        }
        let Some(&[high, low]) = bytes.get(marker_at + 2..marker_at + 4) else {
            return false;
        };
        pos = marker_at + 2 + usize::from(u16::from_be_bytes([high, low]));
        if pos > bytes.len() {
            return false;
        }
        if marker == START_OF_SCAN {
            match end_of_entropy_data(bytes, pos) {
                Some(end) => pos = end,
                None => return false,
            }
        }
    }
}

/// The next 0xFF that starts a marker at or after `pos`, past fill bytes and stray data.
fn next_marker(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos + bytes.get(pos..)?.iter().position(|&b| b == 0xFF)?;
    while bytes.get(at + 1) == Some(&0xFF) {
        at += 1;
    }
    Some(at)
}

fn is_standalone_marker(marker: u8) -> bool {
    // TEM, start-of-image and the restart markers carry no length.
    matches!(marker, 0x01 | 0xD8 | 0xD0..=0xD7)
}

/// Where the entropy-coded data of a scan ends: the first marker that is not a stuffed 0xFF00
/// or a restart marker.
fn end_of_entropy_data(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    loop {
        at = next_marker(bytes, at)?;
        match bytes.get(at + 1)? {
            0x00 | 0xD0..=0xD7 => at += 2,
            _ => return Some(at),
        }
    }
}

// --- describing ---

fn describe(name: &str, bytes: &[u8], decoded: &Decoded, model_side: u32) -> ImageInfo {
    let (width, height) = oriented(decoded.image.dimensions(), decoded.orientation);
    let (model_width, model_height) = fit_within(width, height, model_side);
    let (thumbnail_width, thumbnail_height) = fit_within(width, height, THUMBNAIL_SIDE);
    ImageInfo {
        name: name.to_owned(),
        format: decoded.format,
        mime: decoded.format.mime(),
        size_bytes: len_u64(bytes),
        width,
        height,
        frames_note: frames_note(decoded.format, bytes),
        model_width,
        model_height,
        thumbnail_width,
        thumbnail_height,
    }
}

fn frames_note(format: ImageFormatKind, bytes: &[u8]) -> Option<String> {
    let animated = match format {
        // Every GIF may be animated, and finding out would mean decoding every frame.
        ImageFormatKind::Gif => true,
        ImageFormatKind::Webp => is_animated_webp(bytes),
        ImageFormatKind::Png | ImageFormatKind::Jpeg => false,
    };
    animated.then(|| format!("{}: only the first frame is used", format.label()))
}

/// The animation flag of the extended (VP8X) WebP header.
fn is_animated_webp(bytes: &[u8]) -> bool {
    bytes.get(12..16) == Some(b"VP8X") && bytes.get(20).is_some_and(|flags| flags & 0x02 != 0)
}

fn oriented((width, height): (u32, u32), orientation: Orientation) -> (u32, u32) {
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    }
}

/// Scales down so the long side is at most `side`, keeping the aspect ratio; never scales up.
fn fit_within(width: u32, height: u32, side: u32) -> (u32, u32) {
    let side = side.max(1);
    let long = width.max(height);
    if long <= side {
        return (width, height);
    }
    let scale = |length: u32| {
        let scaled = (u64::from(length) * u64::from(side) + u64::from(long) / 2) / u64::from(long);
        u32::try_from(scaled).unwrap_or(side).clamp(1, side)
    };
    (scale(width), scale(height))
}

// --- rendering ---

/// The image reduced once to the larger of the two outputs, oriented, with premultiplied alpha
/// so that resizing does not bleed the colour of transparent pixels into the edges.
fn working_image(decoded: Decoded, model_width: u32, model_height: u32) -> RgbaImage {
    let (shown_width, shown_height) = oriented(decoded.image.dimensions(), decoded.orientation);
    let side = model_width.max(model_height).max(THUMBNAIL_SIDE);
    let target = oriented(
        fit_within(shown_width, shown_height, side),
        decoded.orientation,
    );
    let mut working = if decoded.image.color().has_alpha() {
        let mut rgba = decoded.image.into_rgba8();
        premultiply(&mut rgba);
        downscale(&DynamicImage::ImageRgba8(rgba), target)
    } else {
        // Opaque: resize in the native pixel type and convert only the small result.
        downscale(&decoded.image, target)
    };
    working.apply_orientation(decoded.orientation);
    working.into_rgba8()
}

fn downscale(image: &DynamicImage, (width, height): (u32, u32)) -> DynamicImage {
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    let prefilter = (
        width.saturating_mul(PREFILTER_RATIO),
        height.saturating_mul(PREFILTER_RATIO),
    );
    if image.width() > prefilter.0 && image.height() > prefilter.1 {
        let reduced = image.thumbnail_exact(prefilter.0, prefilter.1);
        return reduced.resize_exact(width, height, FilterType::Lanczos3);
    }
    image.resize_exact(width, height, FilterType::Lanczos3)
}

fn resize(image: &RgbaImage, width: u32, height: u32) -> RgbaImage {
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    image::imageops::resize(image, width, height, FilterType::Lanczos3)
}

fn premultiply(image: &mut RgbaImage) {
    for pixel in image.pixels_mut() {
        let alpha = u16::from(pixel[3]);
        for channel in &mut pixel.0[..3] {
            *channel = ((u16::from(*channel) * alpha + 127) / 255) as u8;
        }
    }
}

fn unpremultiply(image: &mut RgbaImage) {
    for pixel in image.pixels_mut() {
        let alpha = u16::from(pixel[3]);
        for channel in &mut pixel.0[..3] {
            *channel = match alpha {
                0 => 0,
                _ => ((u16::from(*channel) * 255 + alpha / 2) / alpha).min(255) as u8,
            };
        }
    }
}

/// Composites a premultiplied image over white: colour + (1 - alpha) × white.
fn flatten_on_white(image: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let [r, g, b, a] = image.get_pixel(x, y).0;
        let white = 255 - a;
        image::Rgb([
            r.saturating_add(white),
            g.saturating_add(white),
            b.saturating_add(white),
        ])
    })
}

fn encode_thumbnail(name: &str, mut thumbnail: RgbaImage, has_alpha: bool) -> Result<Vec<u8>> {
    let (width, height) = thumbnail.dimensions();
    let mut png = Vec::new();
    let encoder = PngEncoder::new(&mut png);
    let written = if has_alpha {
        unpremultiply(&mut thumbnail);
        encoder.write_image(thumbnail.as_raw(), width, height, ExtendedColorType::Rgba8)
    } else {
        let rgb = DynamicImage::ImageRgba8(thumbnail).into_rgb8();
        encoder.write_image(rgb.as_raw(), width, height, ExtendedColorType::Rgb8)
    };
    // Encoding into memory does not fail in practice; if it ever does, the image cannot be
    // shown, which the user sees the same way as a bad file.
    written.map_err(|error| {
        Error::Vision(VisionError::ImageCorrupt {
            name: name.to_owned(),
            reason: format!("could not make its thumbnail: {error}"),
        })
    })?;
    Ok(png)
}

// --- formatting ---

fn len_u64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// 40000000 → "40 000 000".
fn group_digits(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(digit);
    }
    grouped
}

fn format_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    let (unit, divisor) = match bytes {
        b if b >= MIB => ("MiB", MIB),
        b if b >= KIB => ("KiB", KIB),
        _ => return format!("{bytes} bytes"),
    };
    if bytes.is_multiple_of(divisor) {
        format!("{} {unit}", bytes / divisor)
    } else {
        format!("{:.1} {unit}", bytes as f64 / divisor as f64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use image::codecs::gif::GifEncoder;
    use image::codecs::webp::WebPEncoder;
    use image::{Delay, Frame, Rgb, Rgba};
    use std::time::{Duration, Instant};

    fn limits() -> ImageLimits {
        ImageLimits::default()
    }

    fn gradient(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        }))
    }

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        encode(&gradient(width, height), ImageFormat::Png)
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        encode(&gradient(width, height), ImageFormat::Jpeg)
    }

    fn webp(image: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        let rgba = image.to_rgba8();
        WebPEncoder::new_lossless(&mut out)
            .encode(
                rgba.as_raw(),
                rgba.width(),
                rgba.height(),
                ExtendedColorType::Rgba8,
            )
            .unwrap();
        out
    }

    fn two_frame_gif() -> Vec<u8> {
        let frame = |colour| {
            Frame::from_parts(
                RgbaImage::from_pixel(40, 30, Rgba(colour)),
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            )
        };
        let mut out = Vec::new();
        GifEncoder::new(&mut out)
            .encode_frames(vec![frame([255, 0, 0, 255]), frame([0, 0, 255, 255])])
            .unwrap();
        out
    }

    /// A PNG whose IHDR is patched to claim other dimensions, with its CRC recomputed.
    fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = png(4, 4);
        // Signature (8), IHDR length (4), type (4), then width and height.
        bytes[16..20].copy_from_slice(&width.to_be_bytes());
        bytes[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A JPEG with an EXIF APP1 segment giving `orientation`, inserted after SOI.
    fn jpeg_with_orientation(width: u32, height: u32, orientation: u16) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec(); // little endian, IFD at 8, 1 entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes()); // count
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value padding, no next IFD
        let mut segment = b"Exif\0\0".to_vec();
        segment.extend_from_slice(&tiff);
        let length = u16::try_from(segment.len() + 2).unwrap();
        let plain = jpeg(width, height);
        let mut out = plain[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&segment);
        out.extend_from_slice(&plain[2..]);
        out
    }

    fn bmp() -> Vec<u8> {
        // A 1×1 24-bit BMP: file header, BITMAPINFOHEADER, one padded pixel row.
        let mut bytes = b"BM".to_vec();
        bytes.extend_from_slice(&58u32.to_le_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(&54u32.to_le_bytes());
        bytes.extend_from_slice(&40u32.to_le_bytes());
        bytes.extend_from_slice(&1i32.to_le_bytes());
        bytes.extend_from_slice(&1i32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&24u16.to_le_bytes());
        bytes.extend_from_slice(&[0; 24]);
        bytes.extend_from_slice(&[0, 0, 255, 0]);
        bytes
    }

    fn unsupported_detail(result: Result<ImageInfo>) -> String {
        match result {
            Err(Error::Vision(VisionError::ImageUnsupported { detail, .. })) => detail,
            other => panic!("expected ImageUnsupported, got {other:?}"),
        }
    }

    fn assert_corrupt<T: std::fmt::Debug>(result: Result<T>) {
        assert!(
            matches!(result, Err(Error::Vision(VisionError::ImageCorrupt { .. }))),
            "expected ImageCorrupt, got {result:?}"
        );
    }

    fn too_large_reason<T: std::fmt::Debug>(result: Result<T>) -> String {
        match result {
            Err(Error::Vision(VisionError::ImageTooLarge { reason, .. })) => reason,
            other => panic!("expected ImageTooLarge, got {other:?}"),
        }
    }

    fn decode_png(bytes: &[u8]) -> RgbaImage {
        image::load_from_memory_with_format(bytes, ImageFormat::Png)
            .unwrap()
            .into_rgba8()
    }

    #[test]
    fn png_is_accepted_with_its_format_mime_and_dimensions() {
        let info = inspect_bytes("a.png", &png(30, 20), &limits(), DEFAULT_MODEL_SIDE).unwrap();
        assert_eq!(info.format, ImageFormatKind::Png);
        assert_eq!(info.mime, "image/png");
        assert_eq!((info.width, info.height), (30, 20));
        assert_eq!(info.frames_note, None);
    }

    #[test]
    fn jpeg_is_accepted_with_its_format_mime_and_dimensions() {
        let info = inspect_bytes("a.jpg", &jpeg(64, 48), &limits(), DEFAULT_MODEL_SIDE).unwrap();
        assert_eq!(info.format, ImageFormatKind::Jpeg);
        assert_eq!(info.mime, "image/jpeg");
        assert_eq!((info.width, info.height), (64, 48));
    }

    #[test]
    fn webp_is_accepted_with_its_format_mime_and_dimensions() {
        let bytes = webp(&gradient(50, 40));
        let info = inspect_bytes("a.webp", &bytes, &limits(), DEFAULT_MODEL_SIDE).unwrap();
        assert_eq!(info.format, ImageFormatKind::Webp);
        assert_eq!(info.mime, "image/webp");
        assert_eq!((info.width, info.height), (50, 40));
        assert_eq!(info.frames_note, None);
    }

    #[test]
    fn animated_gif_uses_only_its_first_frame_and_says_so() {
        let prepared =
            prepare_bytes("a.gif", &two_frame_gif(), &limits(), DEFAULT_MODEL_SIDE).unwrap();
        assert_eq!(prepared.info.format, ImageFormatKind::Gif);
        assert_eq!(prepared.info.mime, "image/gif");
        assert_eq!((prepared.info.width, prepared.info.height), (40, 30));
        assert_eq!(
            prepared.info.frames_note.as_deref(),
            Some("GIF: only the first frame is used")
        );
        assert!(prepared.model_rgb.pixels().all(|p| p.0 == [255, 0, 0]));
    }

    #[test]
    fn format_is_detected_from_content_not_from_the_file_name() {
        let info = inspect_bytes("photo.jpg", &png(8, 8), &limits(), DEFAULT_MODEL_SIDE).unwrap();
        assert_eq!(info.format, ImageFormatKind::Png);
    }

    #[test]
    fn info_serialises_with_lowercase_format_and_mime() {
        let info = inspect_bytes("a.webp", &webp(&gradient(4, 2)), &limits(), 896).unwrap();
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["name"], "a.webp");
        assert_eq!(json["format"], "webp");
        assert_eq!(json["mime"], "image/webp");
        assert_eq!(json["model_width"], 4);
        assert_eq!(ImageFormatKind::Jpeg.extension(), "jpg");
    }

    #[test]
    fn png_with_garbage_after_a_valid_header_is_corrupt() {
        let mut bytes = png(64, 64);
        for (index, byte) in bytes.iter_mut().enumerate().skip(40) {
            *byte = (index * 7) as u8;
        }
        assert_corrupt(inspect_bytes("a.png", &bytes, &limits(), 896));
    }

    #[test]
    fn png_cut_in_half_is_corrupt() {
        let bytes = png(300, 200);
        assert_corrupt(inspect_bytes(
            "a.png",
            &bytes[..bytes.len() / 2],
            &limits(),
            896,
        ));
    }

    #[test]
    fn jpeg_cut_in_half_is_corrupt_although_the_decoder_would_fill_it_with_grey() {
        let bytes = jpeg(300, 200);
        assert_corrupt(inspect_bytes(
            "a.jpg",
            &bytes[..bytes.len() / 2],
            &limits(),
            896,
        ));
        assert_corrupt(inspect_bytes(
            "a.jpg",
            &bytes[..bytes.len() - 2],
            &limits(),
            896,
        ));
    }

    #[test]
    fn jpeg_with_data_after_its_end_marker_is_accepted() {
        let mut bytes = jpeg(32, 32);
        bytes.extend_from_slice(b"trailing bytes some cameras append");
        assert!(inspect_bytes("a.jpg", &bytes, &limits(), 896).is_ok());
    }

    #[test]
    fn webp_cut_in_half_is_corrupt() {
        let bytes = webp(&gradient(100, 80));
        assert_corrupt(inspect_bytes(
            "a.webp",
            &bytes[..bytes.len() / 2],
            &limits(),
            896,
        ));
    }

    #[test]
    fn gif_cut_inside_its_first_frame_is_corrupt() {
        let bytes = two_frame_gif();
        assert_corrupt(inspect_bytes(
            "a.gif",
            &bytes[..bytes.len() / 4],
            &limits(),
            896,
        ));
    }

    #[test]
    fn every_prefix_of_every_format_is_refused_or_accepted_without_panicking() {
        let samples = [
            png(40, 30),
            jpeg(40, 30),
            webp(&gradient(40, 30)),
            two_frame_gif(),
            jpeg_with_orientation(40, 30, 6),
        ];
        for sample in &samples {
            for cut in 0..sample.len() {
                let _ = inspect_bytes("cut", &sample[..cut], &limits(), 896);
            }
        }
    }

    #[test]
    fn png_header_claiming_100000_by_100000_is_refused_at_once_without_decoding() {
        let bytes = png_claiming(100_000, 100_000);
        let started = Instant::now();
        let reason = too_large_reason(inspect_bytes("bomb.png", &bytes, &limits(), 896));
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(
            reason,
            "100000 × 100000 pixels is over the limit of 40 000 000 pixels"
        );
    }

    #[test]
    fn jpeg_gif_and_webp_bombs_are_refused_from_their_headers() {
        let mut jpeg_bomb = jpeg(16, 16);
        let sof = jpeg_bomb
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .unwrap();
        jpeg_bomb[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]); // 65000 × 65000

        let mut gif_bomb = two_frame_gif();
        gif_bomb[6..10].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]); // screen 65535 × 65535

        // Lossless WebP: 14 bits of width - 1, then 14 bits of height - 1, after the 0x2F byte.
        let mut webp_bomb = webp(&gradient(8, 8));
        let header = u32::from_le_bytes(webp_bomb[21..25].try_into().unwrap());
        let patched = (header & !0x0FFF_FFFF) | (16_382 << 14) | 16_382;
        webp_bomb[21..25].copy_from_slice(&patched.to_le_bytes());

        for (name, bytes, expected) in [
            ("bomb.jpg", jpeg_bomb, "65000 × 65000 pixels"),
            ("bomb.gif", gif_bomb, "65535 × 65535 pixels"),
            ("bomb.webp", webp_bomb, "16383 × 16383 pixels"),
        ] {
            let started = Instant::now();
            let reason = too_large_reason(inspect_bytes(name, &bytes, &limits(), 896));
            assert!(started.elapsed() < Duration::from_millis(500), "{name}");
            assert!(reason.starts_with(expected), "{name}: {reason}");
        }
    }

    #[test]
    fn side_over_max_side_is_refused_even_under_the_pixel_limit() {
        let bytes = png_claiming(20_000, 10);
        let reason = too_large_reason(inspect_bytes("strip.png", &bytes, &limits(), 896));
        assert!(
            reason.contains("a side is over the limit of 16 384 pixels"),
            "{reason}"
        );
    }

    #[test]
    fn decoder_runs_under_image_limits_derived_from_ours() {
        let strict = ImageLimits {
            max_pixels: 10,
            max_side: 100,
            ..limits()
        };
        // The header check refuses first; these bound a decoder whose header lied.
        let mut image_limits = strict.decoder_limits();
        assert_eq!(image_limits.max_image_width, Some(100));
        assert_eq!(image_limits.max_image_height, Some(100));
        assert_eq!(strict.max_alloc(), 80 + 64 * MIB);
        assert!(image_limits.reserve(strict.max_alloc() + 1).is_err());
    }

    #[test]
    fn bytes_over_max_file_bytes_are_refused() {
        let small = ImageLimits {
            max_file_bytes: 1000,
            ..limits()
        };
        let reason = too_large_reason(inspect_bytes("big.png", &png(200, 200), &small, 896));
        assert!(reason.contains("over the limit of 1000 bytes"), "{reason}");
    }

    #[test]
    fn file_over_max_file_bytes_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.png");
        std::fs::write(&path, png(200, 200)).unwrap();
        let small = ImageLimits {
            max_file_bytes: 1000,
            ..limits()
        };
        match inspect_file(&path, &small, 896) {
            Err(Error::Vision(VisionError::ImageTooLarge { name, .. })) => {
                assert_eq!(name, "big.png")
            }
            other => panic!("expected ImageTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn inspect_file_names_the_file_not_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holiday.webp");
        std::fs::write(&path, webp(&gradient(10, 10))).unwrap();
        let info = inspect_file(&path, &limits(), 896).unwrap();
        assert_eq!(info.name, "holiday.webp");
        let broken = dir.path().join("notes.png");
        std::fs::write(&broken, b"hello").unwrap();
        match inspect_file(&broken, &limits(), 896) {
            Err(Error::Vision(VisionError::ImageUnsupported { name, .. })) => {
                assert_eq!(name, "notes.png")
            }
            other => panic!("expected ImageUnsupported, got {other:?}"),
        }
    }

    #[test]
    fn missing_file_is_an_io_error_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.png");
        match prepare_file(&path, &limits(), 896) {
            Err(Error::Io { path: reported, .. }) => assert_eq!(reported, path),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn bmp_is_unsupported_and_named_as_bmp() {
        let detail = unsupported_detail(inspect_bytes("a.bmp", &bmp(), &limits(), 896));
        assert_eq!(detail, "a BMP image");
    }

    #[test]
    fn empty_file_is_unsupported_and_named_empty() {
        let detail = unsupported_detail(inspect_bytes("a.png", b"", &limits(), 896));
        assert_eq!(detail, "an empty file");
    }

    #[test]
    fn text_is_unsupported_and_named_text() {
        let text = "Dear diary, today I attached a text file by mistake.\n";
        let detail = unsupported_detail(inspect_bytes("a.jpg", text.as_bytes(), &limits(), 896));
        assert_eq!(detail, "text");
    }

    #[test]
    fn other_documents_and_images_are_unsupported_and_named() {
        let cases: [(&[u8], &str); 5] = [
            (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
            (
                b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                "an SVG image",
            ),
            (b"II*\0\x08\0\0\0", "a TIFF image"),
            (b"\0\0\0\x18ftypheic\0\0\0\0", "a HEIC/HEIF image"),
            (
                &[0x00, 0x9f, 0x13, 0xfe, 0x80, 0x01, 0x7f, 0xc3],
                "unknown data",
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                unsupported_detail(inspect_bytes("x", bytes, &limits(), 896)),
                expected
            );
        }
    }

    #[test]
    fn unsupported_message_names_the_file_and_what_it_is() {
        let error = inspect_bytes("scan.bmp", &bmp(), &limits(), 896).unwrap_err();
        assert_eq!(
            error.to_string(),
            "scan.bmp: a BMP image is not a supported image (png, jpeg, webp, gif)"
        );
    }

    #[test]
    fn wide_image_is_scaled_to_the_model_side_keeping_its_aspect() {
        let prepared = prepare_bytes("wide.png", &png(4000, 1000), &limits(), 896).unwrap();
        assert_eq!(
            (prepared.info.model_width, prepared.info.model_height),
            (896, 224)
        );
        assert_eq!(prepared.model_rgb.dimensions(), (896, 224));
        assert_eq!(
            (
                prepared.info.thumbnail_width,
                prepared.info.thumbnail_height
            ),
            (256, 64)
        );
    }

    #[test]
    fn caller_can_choose_another_model_side() {
        let info = inspect_bytes("tall.jpg", &jpeg(300, 1200), &limits(), 448).unwrap();
        assert_eq!((info.model_width, info.model_height), (112, 448));
    }

    #[test]
    fn small_image_is_never_upscaled() {
        let prepared = prepare_bytes("small.png", &png(100, 50), &limits(), 896).unwrap();
        assert_eq!(
            (prepared.info.model_width, prepared.info.model_height),
            (100, 50)
        );
        assert_eq!(prepared.model_rgb.dimensions(), (100, 50));
        assert_eq!(decode_png(&prepared.thumbnail_png).dimensions(), (100, 50));
    }

    #[test]
    fn thumbnail_is_a_png_within_256_on_its_long_side() {
        let prepared = prepare_bytes("a.jpg", &jpeg(600, 900), &limits(), 896).unwrap();
        assert!(prepared.thumbnail_png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let thumbnail = decode_png(&prepared.thumbnail_png);
        assert_eq!(thumbnail.dimensions(), (171, 256));
        assert_eq!(
            thumbnail.dimensions(),
            (
                prepared.info.thumbnail_width,
                prepared.info.thumbnail_height
            )
        );
    }

    #[test]
    fn thumbnail_is_not_upscaled_from_a_smaller_model_image() {
        let prepared = prepare_bytes("a.png", &png(1000, 500), &limits(), 64).unwrap();
        assert_eq!(prepared.model_rgb.dimensions(), (64, 32));
        assert_eq!(decode_png(&prepared.thumbnail_png).dimensions(), (256, 128));
    }

    #[test]
    fn zero_model_side_gives_a_one_pixel_image_instead_of_failing() {
        let prepared = prepare_bytes("a.png", &png(10, 10), &limits(), 0).unwrap();
        assert_eq!(prepared.model_rgb.dimensions(), (1, 1));
    }

    #[test]
    fn transparency_is_flattened_to_white_for_the_model_and_kept_in_the_thumbnail() {
        // Left half opaque red, right half fully transparent black.
        let image = RgbaImage::from_fn(400, 200, |x, _| {
            if x < 200 {
                Rgba([255, 0, 0, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        });
        for (name, bytes) in [
            (
                "a.png",
                encode(&DynamicImage::ImageRgba8(image.clone()), ImageFormat::Png),
            ),
            ("a.webp", webp(&DynamicImage::ImageRgba8(image))),
        ] {
            let prepared = prepare_bytes(name, &bytes, &limits(), 100).unwrap();
            let model = &prepared.model_rgb;
            assert_eq!(model.get_pixel(10, 25).0, [255, 0, 0], "{name}");
            assert_eq!(model.get_pixel(90, 25).0, [255, 255, 255], "{name}");
            // No dark fringe where red meets transparent black.
            assert!(model.pixels().all(|p| p[0] >= 250), "{name}");
            let thumbnail = decode_png(&prepared.thumbnail_png);
            assert_eq!(thumbnail.get_pixel(10, 10).0, [255, 0, 0, 255], "{name}");
            assert_eq!(thumbnail.get_pixel(250, 10)[3], 0, "{name}");
        }
    }

    #[test]
    fn exif_orientation_of_a_jpeg_is_applied() {
        // 6 = rotate 90° clockwise to display.
        let bytes = jpeg_with_orientation(80, 40, 6);
        let prepared = prepare_bytes("phone.jpg", &bytes, &limits(), 20).unwrap();
        assert_eq!((prepared.info.width, prepared.info.height), (40, 80));
        assert_eq!(
            (prepared.info.model_width, prepared.info.model_height),
            (10, 20)
        );
        assert_eq!(prepared.model_rgb.dimensions(), (10, 20));
        assert_eq!(decode_png(&prepared.thumbnail_png).dimensions(), (40, 80));
    }

    #[test]
    fn large_photo_is_prepared_in_reasonable_time() {
        let started = Instant::now();
        let prepared = prepare_bytes("big.jpg", &jpeg(4000, 3000), &limits(), 896).unwrap();
        assert_eq!(prepared.model_rgb.dimensions(), (896, 672));
        // Generous: unoptimised test builds are slow; this catches an accidental full-size
        // Lanczos pass or an extra full-size copy, not a few percent.
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn prepare_keeps_the_original_bytes_and_their_sha256() {
        let bytes = jpeg(120, 90);
        let prepared = prepare_bytes("a.jpg", &bytes, &limits(), 896).unwrap();
        assert_eq!(prepared.original, bytes);
        assert_eq!(prepared.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(prepared.sha256.len(), 64);
        assert_eq!(prepared.info.size_bytes, bytes.len() as u64);
    }

    #[test]
    fn formatting_helpers_read_well() {
        assert_eq!(group_digits(40_000_000), "40 000 000");
        assert_eq!(group_digits(999), "999");
        assert_eq!(format_bytes(20 * MIB), "20 MiB");
        assert_eq!(format_bytes(25 * MIB + MIB / 2), "25.5 MiB");
        assert_eq!(fit_within(4000, 1000, 896), (896, 224));
        assert_eq!(fit_within(10_000, 1, 896), (896, 1));
    }
}

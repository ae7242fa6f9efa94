//! Audio preparation for speech recognition: turning any audio into what
//! whisper.cpp wants, 16 kHz mono `f32` samples in `[-1, 1]`.
//!
//! This module owns decoding files (WAV, MP3, OGG Vorbis, FLAC, through the
//! pure-Rust `symphonia`), downmixing to mono, resampling (a windowed-sinc
//! [`Resampler`], so 48 kHz microphones do not alias), the silence padding
//! whisper needs, and the levels the recording meter shows. Everything here is
//! a pure function of its input, with no device or process involved.
//!
//! Invariants:
//!
//! - What [`decode_file`] and [`decode_bytes`] return is mono, at
//!   [`WHISPER_RATE`], at least one sample long, with every sample finite and
//!   in `[-1, 1]` (a broken float file's NaN and infinities become 0,
//!   overshoot is clamped).
//! - Nothing longer than [`MAX_SECONDS`] is decoded: a longer file is
//!   [`Error::Voice(VoiceError::AudioTooLong)`], never a silently shortened transcript. The
//!   length the container declares (WAV data size, FLAC stream info, the
//!   MP3 Xing/LAME header, the last OGG page) is trusted to refuse a file
//!   before decoding it, so a header that claims too much is refused even if
//!   less audio follows. Audio of undeclared length is counted while decoding
//!   and refused as soon as it passes the limit; `seconds` is then how much
//!   had been decoded, just over the limit.
//! - Nothing here panics, whatever the input: no `unwrap`, and the decoders
//!   run inside `catch_unwind`, so that a bug in one on some malformed file
//!   is an [`Error::Voice(VoiceError::AudioUnreadable)`] rather than a crash.
//!
//! Errors say what the user can do: a file type we do not handle is
//! [`Error::Voice(VoiceError::AudioUnsupported)`], decided from the extension alone before the
//! file is opened; a file that cannot be opened or read from disk is
//! [`Error::Io`]; a file of a handled type whose content does not decode is
//! [`Error::Voice(VoiceError::AudioUnreadable)`], with the reason.
//!
//! Damaged files: a file that starts well and breaks later (a truncated
//! download, a recording cut off by a crash) gives the audio before the damage
//! instead of an error, because a partial transcript is more use than none.
//! Packets the decoder rejects as malformed are skipped (as players do), the
//! end of the data ends the stream wherever it falls, and 16 demuxer errors in
//! a row end it too, so decoding cannot spin on one error. Only a file from
//! which not one sample decodes is an error. Decoding also stops, keeping what
//! it has, at a change of sample rate or a chained OGG stream.

use crate::error::VoiceError;
use std::fs::File;
use std::io::{Cursor, ErrorKind};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as DecodeError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use crate::error::{Error, Result};

/// The sample rate whisper.cpp expects, in Hz.
pub const WHISPER_RATE: u32 = 16_000;

/// The longest clip or file accepted, in seconds.
pub const MAX_SECONDS: u32 = 600;

/// File extensions [`decode_file`] and [`decode_bytes`] accept (compared
/// without regard to case).
pub const SUPPORTED_EXTENSIONS: [&str; 4] = ["wav", "mp3", "ogg", "flac"];

/// Silence added before and after a clip by [`pad_for_whisper`]: 0.5 s.
pub const PAD_SAMPLES: usize = WHISPER_RATE as usize / 2;

/// The lowest level [`level_dbfs`] reports, for digital silence and anything
/// quieter.
pub const SILENCE_FLOOR_DBFS: f32 = -90.0;

/// A clip whose overall level ([`level_dbfs`]) is at or below this holds no
/// speech (a muted or unplugged microphone, a silent file). whisper.cpp
/// invents text for silence, so such a clip is not worth transcribing. The
/// level meter in the UI also starts at -60 dBFS.
pub const SILENCE_DBFS: f32 = -60.0;

/// Source sample rates a file may declare. Anything outside is treated as a
/// corrupt header rather than resampled.
const SOURCE_RATES: std::ops::RangeInclusive<u32> = 1_000..=768_000;

/// After this many demuxer errors in a row, decoding stops with what it has.
const MAX_CONSECUTIVE_DEMUX_ERRORS: u32 = 16;

// ---------------------------------------------------------------------------
// Sample processing
// ---------------------------------------------------------------------------

/// Averages interleaved frames of `channels` samples into mono.
///
/// One channel is returned as is; zero channels give an empty buffer. A
/// trailing partial frame (fewer than `channels` samples) is dropped.
pub fn downmix(interleaved: &[f32], channels: u16) -> Vec<f32> {
    let mut mono = Vec::with_capacity(interleaved.len() / usize::from(channels.max(1)));
    downmix_into(interleaved, usize::from(channels), &mut mono);
    mono
}

fn downmix_into(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) {
    match channels {
        0 => {}
        1 => mono.extend_from_slice(interleaved),
        n => {
            let scale = 1.0 / n as f32;
            mono.extend(
                interleaved
                    .chunks_exact(n)
                    .map(|frame| frame.iter().sum::<f32>() * scale),
            );
        }
    }
}

/// Adds [`PAD_SAMPLES`] (0.5 s at 16 kHz) of silence before and after a clip.
///
/// whisper.cpp often drops the first word of a short clip that starts right on
/// speech, as a push-to-talk recording or a trimmed file does. Half a second
/// of silence in front avoids that, the same behind gives the last word the
/// same margin, and the extra second costs next to nothing to transcribe.
pub fn pad_for_whisper(samples: Vec<f32>) -> Vec<f32> {
    let mut padded = Vec::with_capacity(samples.len() + 2 * PAD_SAMPLES);
    padded.resize(PAD_SAMPLES, 0.0);
    padded.extend_from_slice(&samples);
    padded.resize(samples.len() + 2 * PAD_SAMPLES, 0.0);
    padded
}

/// Root mean square of `samples` (0 for an empty buffer).
pub fn rms_level(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// RMS level in dB relative to a full-scale constant (1.0), floored at
/// [`SILENCE_FLOOR_DBFS`]. A full-scale sine reads about -3 dBFS.
pub fn level_dbfs(samples: &[f32]) -> f32 {
    let rms = rms_level(samples);
    if rms > 0.0 {
        // `max` also maps a NaN (from NaN samples) to the floor.
        (20.0 * rms.log10()).max(SILENCE_FLOOR_DBFS)
    } else {
        SILENCE_FLOOR_DBFS
    }
}

// ---------------------------------------------------------------------------
// Resampling
// ---------------------------------------------------------------------------

/// Zero crossings of the sinc kernel on each side of its centre.
const ZERO_CROSSINGS: f64 = 48.0;
/// Cutoff as a fraction of the lower of the two Nyquist frequencies. With 48
/// zero crossings, at 16 kHz out the response is flat to 7.1 kHz (-0.6 dB at
/// 7.3 kHz, -5 dB at 7.5 kHz) and more than 90 dB down from 8 kHz, so nothing
/// folds back into the output band.
const ROLLOFF: f64 = 0.94;
/// Kaiser window shape; 9 gives about 90 dB of stop-band attenuation.
const KAISER_BETA: f64 = 9.0;
/// Most filter phases kept in the table. Ratios that need more (rates that
/// share no large common divisor) interpolate between neighbouring phases.
const MAX_PHASES: u64 = 1024;
/// Most coefficients kept in the table (8 MiB). Extreme downsampling ratios
/// that would need more compute the kernel per output sample instead.
const MAX_TABLE_LEN: usize = 1 << 21;

/// How the resampler finds the filter for one output sample.
#[derive(Debug, Clone)]
enum Mode {
    /// Equal rates: samples are copied.
    Identity,
    /// A zero rate: there is nothing to produce.
    Empty,
    /// One precomputed row per phase; the phase is exact.
    Table,
    /// `MAX_PHASES + 1` precomputed rows; linear interpolation between the
    /// two rows around the exact phase.
    Interpolated,
    /// No table: the kernel is evaluated for every output sample.
    Direct,
}

/// A band-limited (Kaiser-windowed sinc) resampler between two fixed rates.
///
/// Output sample `n` lies at input time `n * from / to`; the filter is
/// symmetric, so there is no delay, and the input is taken as silent beyond
/// its ends. The cutoff sits at 94 % of the lower Nyquist frequency,
/// so downsampling (48 kHz to 16 kHz) does not alias and upsampling (8 kHz to
/// 16 kHz) does not image. Each filter phase is normalised to unit DC gain.
///
/// Building one precomputes the polyphase table once; keep it around to
/// resample many buffers between the same rates (a microphone, say).
#[derive(Debug, Clone)]
pub struct Resampler {
    from_rate: u32,
    to_rate: u32,
    mode: Mode,
    /// Input samples advanced per output sample: `step_int + step_frac / up`.
    step_int: usize,
    step_frac: u64,
    /// Output rate over the greatest common divisor: the number of distinct
    /// phases.
    up: u64,
    /// Taps per output sample: the kernel covers input offsets
    /// `-(half - 1) ..= half` around the integer input position.
    half: usize,
    taps: usize,
    /// Rows in the table (`up` for `Table`, `MAX_PHASES` for
    /// `Interpolated`, where row `MAX_PHASES` also exists).
    phases: u64,
    table: Vec<f32>,
    kernel: Kernel,
}

/// The windowed-sinc kernel, in units of input samples.
#[derive(Debug, Clone, Copy)]
struct Kernel {
    /// Twice the cutoff, in cycles per input sample.
    cutoff2: f64,
    /// The window's half width, in input samples.
    half_width: f64,
    /// `I0(KAISER_BETA)`, the window's normaliser.
    i0_beta: f64,
}

impl Kernel {
    fn value(&self, x: f64) -> f64 {
        if x.abs() >= self.half_width {
            return 0.0;
        }
        let arg = std::f64::consts::PI * self.cutoff2 * x;
        let sinc = if arg.abs() < 1e-12 {
            1.0
        } else {
            arg.sin() / arg
        };
        let r = x / self.half_width;
        let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / self.i0_beta;
        self.cutoff2 * sinc * window
    }

    /// Fills `row` with the taps for an output at fractional input position
    /// `phase` in `[0, 1]` past the integer input index, normalised to unit
    /// sum.
    fn fill_row(&self, phase: f64, half: usize, row: &mut [f32]) {
        let mut values = Vec::with_capacity(row.len());
        for j in 0..row.len() {
            // Input offset of tap j relative to the integer position.
            let offset = j as f64 - (half as f64 - 1.0);
            values.push(self.value(phase - offset));
        }
        let sum: f64 = values.iter().sum();
        let norm = if sum.abs() > 1e-9 { 1.0 / sum } else { 1.0 };
        for (out, v) in row.iter_mut().zip(values) {
            *out = (v * norm) as f32;
        }
    }
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let half = x / 2.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..200 {
        let f = half / k as f64;
        term *= f * f;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Resampler {
    /// A resampler from `from_rate` to `to_rate` Hz. A zero rate on either
    /// side gives a resampler that always returns an empty buffer.
    pub fn new(from_rate: u32, to_rate: u32) -> Self {
        Self::with_table_limit(from_rate, to_rate, MAX_TABLE_LEN)
    }

    fn with_table_limit(from_rate: u32, to_rate: u32, table_limit: usize) -> Self {
        let mut resampler = Resampler {
            from_rate,
            to_rate,
            mode: Mode::Identity,
            step_int: 1,
            step_frac: 0,
            up: 1,
            half: 0,
            taps: 0,
            phases: 0,
            table: Vec::new(),
            kernel: Kernel {
                cutoff2: 1.0,
                half_width: 1.0,
                i0_beta: 1.0,
            },
        };
        if from_rate == 0 || to_rate == 0 {
            resampler.mode = Mode::Empty;
            return resampler;
        }
        if from_rate == to_rate {
            return resampler;
        }
        let divisor = gcd(from_rate, to_rate);
        let up = u64::from(to_rate / divisor);
        let down = u64::from(from_rate / divisor);
        // Cutoff in cycles per input sample.
        let cutoff = ROLLOFF * 0.5 * (f64::from(to_rate) / f64::from(from_rate)).min(1.0);
        let half_width = ZERO_CROSSINGS / (2.0 * cutoff);
        let half = half_width.ceil() as usize;
        let taps = 2 * half;
        resampler.kernel = Kernel {
            cutoff2: 2.0 * cutoff,
            half_width,
            i0_beta: bessel_i0(KAISER_BETA),
        };
        resampler.step_int = usize::try_from(down / up).unwrap_or(usize::MAX);
        resampler.step_frac = down % up;
        resampler.up = up;
        resampler.half = half;
        resampler.taps = taps;

        let (mode, phases, rows) = if up <= MAX_PHASES {
            (Mode::Table, up, up)
        } else {
            (Mode::Interpolated, MAX_PHASES, MAX_PHASES + 1)
        };
        let table_len = usize::try_from(rows)
            .ok()
            .and_then(|rows| rows.checked_mul(taps));
        match table_len {
            Some(len) if len <= table_limit => {
                let mut table = vec![0.0f32; len];
                for (p, row) in table.chunks_exact_mut(taps).enumerate() {
                    resampler
                        .kernel
                        .fill_row(p as f64 / phases as f64, half, row);
                }
                resampler.mode = mode;
                resampler.phases = phases;
                resampler.table = table;
            }
            _ => resampler.mode = Mode::Direct,
        }
        resampler
    }

    /// The input rate, in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    /// The output rate, in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// Number of output samples for `input_len` input samples:
    /// `round(input_len * to / from)`.
    pub fn output_len(&self, input_len: usize) -> usize {
        if self.from_rate == 0 || self.to_rate == 0 {
            return 0;
        }
        let from = u128::from(self.from_rate);
        let n = (input_len as u128 * u128::from(self.to_rate) + from / 2) / from;
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Resamples one whole buffer.
    pub fn process(&self, input: &[f32]) -> Vec<f32> {
        match self.mode {
            Mode::Identity => return input.to_vec(),
            Mode::Empty => return Vec::new(),
            Mode::Table | Mode::Interpolated | Mode::Direct => {}
        }
        let out_len = self.output_len(input.len());
        let mut out = Vec::with_capacity(out_len);
        let mut scratch = match self.mode {
            Mode::Direct => vec![0.0f32; self.taps],
            _ => Vec::new(),
        };
        // Exact input position of the current output: index + remainder / up.
        let mut index: usize = 0;
        let mut remainder: u64 = 0;
        for _ in 0..out_len {
            let value = match self.mode {
                Mode::Table => {
                    let row = self.row(remainder);
                    self.apply(input, index, row)
                }
                Mode::Interpolated => {
                    let scaled = remainder * self.phases;
                    let p = scaled / self.up;
                    let t = ((scaled % self.up) as f64 / self.up as f64) as f32;
                    let a = self.apply(input, index, self.row(p));
                    if t > 0.0 {
                        let b = self.apply(input, index, self.row(p + 1));
                        a + (b - a) * t
                    } else {
                        a
                    }
                }
                _ => {
                    let phase = remainder as f64 / self.up as f64;
                    self.kernel.fill_row(phase, self.half, &mut scratch);
                    self.apply(input, index, &scratch)
                }
            };
            out.push(value);
            index = index.saturating_add(self.step_int);
            remainder += self.step_frac;
            if remainder >= self.up {
                remainder -= self.up;
                index = index.saturating_add(1);
            }
        }
        out
    }

    fn row(&self, phase: u64) -> &[f32] {
        let start = usize::try_from(phase)
            .ok()
            .and_then(|p| p.checked_mul(self.taps))
            .unwrap_or(usize::MAX);
        self.table
            .get(start..start.saturating_add(self.taps))
            .unwrap_or(&[])
    }

    /// One output sample: the taps of `row` against the input around `index`.
    fn apply(&self, input: &[f32], index: usize, row: &[f32]) -> f32 {
        // First input sample under the filter; may lie before the input.
        let first = index as isize - (self.half as isize - 1);
        if first >= 0 {
            let start = first as usize;
            if let Some(window) = input.get(start..start.saturating_add(row.len())) {
                return dot(window, row);
            }
        }
        // Near an edge: samples outside the input count as silence.
        let mut acc = 0.0f32;
        for (j, &c) in row.iter().enumerate() {
            let k = first + j as isize;
            if k >= 0 {
                if let Some(&x) = input.get(k as usize) {
                    acc += x * c;
                }
            }
        }
        acc
    }
}

/// Dot product of the common length of `a` and `b`.
///
/// Written with plain indexing and eight independent sums: the optimiser
/// vectorises it in release builds, and it stays about ten times faster than
/// an iterator chain in unoptimised (test) builds, where this loop is where a
/// resampler spends its time.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = [0.0f32; 8];
    let mut i = 0;
    while i + 8 <= n {
        s[0] += a[i] * b[i];
        s[1] += a[i + 1] * b[i + 1];
        s[2] += a[i + 2] * b[i + 2];
        s[3] += a[i + 3] * b[i + 3];
        s[4] += a[i + 4] * b[i + 4];
        s[5] += a[i + 5] * b[i + 5];
        s[6] += a[i + 6] * b[i + 6];
        s[7] += a[i + 7] * b[i + 7];
        i += 8;
    }
    let mut total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
}

/// Resamples `input` from `from_rate` to `to_rate` Hz with a [`Resampler`].
///
/// Returns `round(input.len() * to_rate / from_rate)` samples; equal rates
/// return a copy, a zero rate an empty buffer.
pub fn resample(input: &[f32], from_rate: u32, to_rate: u32) -> Vec<f32> {
    Resampler::new(from_rate, to_rate).process(input)
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes an audio file to 16 kHz mono samples in `[-1, 1]`.
///
/// The file type comes from the extension (one of [`SUPPORTED_EXTENSIONS`]),
/// which is checked before the file is opened. The first audio track is
/// decoded, downmixed and resampled. See the module documentation for how
/// damaged files are treated.
///
/// # Errors
///
/// - [`Error::Voice(VoiceError::AudioUnsupported)`]: the extension is missing or not handled.
/// - [`Error::Io`]: the file cannot be opened or read.
/// - [`Error::Voice(VoiceError::AudioUnreadable)`]: the content does not decode.
/// - [`Error::Voice(VoiceError::AudioTooLong)`]: the audio is longer than [`MAX_SECONDS`].
pub fn decode_file(path: &Path) -> Result<Vec<f32>> {
    let extension = supported_extension(path)?;
    let file = File::open(path).map_err(|source| Error::io(path, source))?;
    let origin = Origin {
        path: path.to_path_buf(),
        is_file: true,
    };
    decode_source(Box::new(file), &extension, &origin, MAX_SECONDS)
}

/// Decodes audio held in memory (a file dropped on the window) like
/// [`decode_file`]; `name` is the file's name, whose extension picks the
/// format and which names the audio in errors.
///
/// # Errors
///
/// As [`decode_file`], except that there is no [`Error::Io`].
pub fn decode_bytes(name: &str, bytes: Vec<u8>) -> Result<Vec<f32>> {
    let path = Path::new(name);
    let extension = supported_extension(path)?;
    let origin = Origin {
        path: path.to_path_buf(),
        is_file: false,
    };
    decode_source(
        Box::new(Cursor::new(bytes)),
        &extension,
        &origin,
        MAX_SECONDS,
    )
}

/// Where the audio being decoded came from, for errors.
struct Origin {
    path: PathBuf,
    /// Read from disk, so an I/O error is a real one ([`Error::Io`]) rather
    /// than a sign of damaged data.
    is_file: bool,
}

impl Origin {
    fn unreadable(&self, reason: impl Into<String>) -> Error {
        Error::Voice(VoiceError::AudioUnreadable {
            path: self.path.clone(),
            reason: reason.into(),
        })
    }

    fn too_long(&self, seconds: f64, limit: u32) -> Error {
        let what = self
            .path
            .file_name()
            .unwrap_or(self.path.as_os_str())
            .to_string_lossy()
            .into_owned();
        Error::Voice(VoiceError::AudioTooLong {
            what,
            seconds,
            limit,
        })
    }

    /// Maps an error from opening the stream (probing it, making its
    /// decoder). Only there can an I/O error be the disk's fault.
    fn failed(&self, err: DecodeError) -> Error {
        match err {
            DecodeError::IoError(source)
                if self.is_file && source.kind() != ErrorKind::UnexpectedEof =>
            {
                Error::io(self.path.clone(), source)
            }
            other => self.unreadable(describe(&other)),
        }
    }
}

/// A user-facing reason for a symphonia error.
fn describe(err: &DecodeError) -> String {
    match err {
        DecodeError::IoError(source) if source.kind() == ErrorKind::UnexpectedEof => {
            "the data ends before any audio".to_owned()
        }
        // Symphonia's wording for this ("unsupported feature: core (probe):
        // no suitable format reader found") would puzzle a user.
        DecodeError::Unsupported(what) if what.contains("probe") => {
            "no known audio format was found in it".to_owned()
        }
        other => other.to_string(),
    }
}

/// The lower-cased extension of `path` if it is one we decode.
fn supported_extension(path: &Path) -> Result<String> {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if SUPPORTED_EXTENSIONS.contains(&extension.as_str()) {
        Ok(extension)
    } else {
        Err(Error::Voice(VoiceError::AudioUnsupported {
            path: path.to_path_buf(),
            extension,
        }))
    }
}

/// Shared body of [`decode_file`] and [`decode_bytes`], with the length
/// limit as a parameter so tests can exercise it on short files.
fn decode_source(
    source: Box<dyn MediaSource>,
    extension: &str,
    origin: &Origin,
    limit_seconds: u32,
) -> Result<Vec<f32>> {
    // A decoder that panics on some malformed file must not take the app down
    // with it: that becomes an unreadable-audio error like any other.
    match catch_unwind(AssertUnwindSafe(|| {
        decode_mono(source, extension, origin, limit_seconds)
    })) {
        Ok(Ok((mono, rate))) => {
            let mut samples = Resampler::new(rate, WHISPER_RATE).process(&mono);
            for s in &mut samples {
                *s = s.clamp(-1.0, 1.0);
            }
            Ok(samples)
        }
        Ok(Err(err)) => Err(err),
        Err(_) => Err(origin.unreadable("the decoder failed on malformed data")),
    }
}

/// Decodes the first audio track to mono at its own rate; returns the samples
/// and the rate. Non-finite samples are replaced with silence.
fn decode_mono(
    source: Box<dyn MediaSource>,
    extension: &str,
    origin: &Origin,
    limit_seconds: u32,
) -> Result<(Vec<f32>, u32)> {
    let mut hint = Hint::new();
    hint.with_extension(extension);
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            MediaSourceStream::new(source, Default::default()),
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|err| origin.failed(err))?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| origin.unreadable("it has no audio track"))?;
    let track_id = track.id;
    let num_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|params| params.audio())
        .cloned()
        .ok_or_else(|| origin.unreadable("it has no audio track"))?;
    let rate = match params.sample_rate {
        Some(rate) if SOURCE_RATES.contains(&rate) => rate,
        Some(rate) => {
            return Err(origin.unreadable(format!("a sample rate of {rate} Hz is not supported")))
        }
        None => return Err(origin.unreadable("the sample rate is unknown")),
    };

    // The container's own length, when it states one, rejects a long file
    // before anything is decoded.
    let max_frames = u64::from(limit_seconds) * u64::from(rate);
    if let Some(frames) = num_frames {
        if frames > max_frames {
            return Err(origin.too_long(frames as f64 / f64::from(rate), limit_seconds));
        }
    }

    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|err| origin.failed(err))?;

    let expected = num_frames.unwrap_or(0).min(max_frames);
    let mut mono: Vec<f32> = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    let mut interleaved: Vec<f32> = Vec::new();
    let mut demux_errors = 0u32;
    // Why decoding ended early, reported if nothing decoded at all.
    let mut last_problem: Option<DecodeError> = None;

    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => {
                demux_errors = 0;
                packet
            }
            // The end, or a new chained stream (OGG), which we do not follow.
            Ok(None) | Err(DecodeError::ResetRequired) => break,
            Err(DecodeError::IoError(err)) if err.kind() == ErrorKind::UnexpectedEof => {
                // Truncated data: keep what decoded so far.
                last_problem = Some(DecodeError::IoError(err));
                break;
            }
            Err(DecodeError::IoError(source)) if origin.is_file => {
                return Err(Error::io(origin.path.clone(), source));
            }
            Err(err) => {
                // Some demuxers resynchronise after damage; give them a few
                // tries, but never loop on an error that does not advance.
                last_problem = Some(err);
                demux_errors += 1;
                if demux_errors >= MAX_CONSECUTIVE_DEMUX_ERRORS {
                    break;
                }
                continue;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buffer) => {
                if buffer.spec().rate() != rate {
                    // A rate change mid-stream: stop at the boundary.
                    break;
                }
                let channels = buffer.spec().channels().count();
                buffer.copy_to_vec_interleaved(&mut interleaved);
                downmix_into(&interleaved, channels, &mut mono);
            }
            // A malformed packet: skip it, as players do.
            Err(err @ (DecodeError::DecodeError(_) | DecodeError::IoError(_))) => {
                last_problem = Some(err);
                continue;
            }
            Err(DecodeError::ResetRequired) => break,
            Err(err) => {
                last_problem = Some(err);
                break;
            }
        }
        // For containers that do not state their length (or lie about it).
        if mono.len() as u64 > max_frames {
            return Err(origin.too_long(mono.len() as f64 / f64::from(rate), limit_seconds));
        }
    }

    if mono.is_empty() {
        // An I/O error here came from the data (a decoder reading past a
        // packet), not the disk: real read errors returned above.
        return Err(match last_problem {
            Some(err) => origin.unreadable(describe(&err)),
            None => origin.unreadable("no audio could be decoded from it"),
        });
    }
    for s in &mut mono {
        if !s.is_finite() {
            *s = 0.0;
        }
    }
    Ok((mono, rate))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Directory of the committed fixtures (regenerate with its `make.sh`); in
    /// the repository: `concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/audio")`.
    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/audio");

    /// What every fixture holds, downmixed: 0.25 * (sin 440 Hz + sin 660 Hz).
    const LEFT_HZ: f32 = 440.0;
    const RIGHT_HZ: f32 = 660.0;
    const TONE_AMPLITUDE: f32 = 0.25;

    /// Each fixture and its length in seconds.
    const FIXTURE_FILES: [(&str, f32); 5] = [
        ("tone-44k1-s16-stereo.wav", 0.2),
        ("tone-48k-f32-stereo.wav", 0.1),
        ("tone-44k1-stereo.mp3", 1.0),
        ("tone-48k-stereo.ogg", 1.0),
        ("tone-22k05-stereo.flac", 1.0),
    ];

    fn fixture(name: &str) -> PathBuf {
        Path::new(FIXTURES).join(name)
    }

    fn sine(freq: f32, rate: u32, seconds: f32, amplitude: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds).round() as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                amplitude * (2.0 * std::f64::consts::PI * f64::from(freq) * t).sin() as f32
            })
            .collect()
    }

    /// Amplitude of the `freq` component of `samples` (Hann-windowed DFT).
    fn tone_amplitude(samples: &[f32], rate: u32, freq: f32) -> f32 {
        let n = samples.len() as f64;
        let (mut re, mut im, mut weight) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &s) in samples.iter().enumerate() {
            let i = i as f64;
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i / n).cos();
            let phase = 2.0 * std::f64::consts::PI * f64::from(freq) * i / f64::from(rate);
            re += w * f64::from(s) * phase.cos();
            im -= w * f64::from(s) * phase.sin();
            weight += w;
        }
        (2.0 * (re * re + im * im).sqrt() / weight) as f32
    }

    /// The middle 80 % of a buffer, away from edge effects.
    fn middle(samples: &[f32]) -> &[f32] {
        let cut = samples.len() / 10;
        &samples[cut..samples.len() - cut]
    }

    fn db(ratio: f32) -> f32 {
        20.0 * ratio.log10()
    }

    fn sign_changes(samples: &[f32]) -> usize {
        samples
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count()
    }

    /// A canonical WAV file: `format` 1 (integer PCM) or 3 (float), with the
    /// data chunk's size field set to `data_size` (the real size if `None`).
    fn wav_bytes(
        format: u16,
        bits: u16,
        channels: u16,
        rate: u32,
        data: &[u8],
        data_size: Option<u32>,
    ) -> Vec<u8> {
        let block_align = channels * bits / 8;
        let data_size = data_size.unwrap_or(data.len() as u32);
        let riff_size = if data_size == u32::MAX {
            u32::MAX
        } else {
            36 + data_size
        };
        let mut out = Vec::with_capacity(44 + data.len());
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&riff_size.to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
        out.extend_from_slice(&block_align.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_size.to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn cut_fixture(name: &str, fraction: f64) -> Vec<u8> {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let keep = (bytes.len() as f64 * fraction) as usize;
        bytes[..keep].to_vec()
    }

    // --- resampling -------------------------------------------------------

    #[test]
    fn resampling_48k_to_16k_keeps_length_frequency_and_amplitude() {
        let input = sine(1000.0, 48_000, 1.0, 1.0);
        let out = resample(&input, 48_000, 16_000);
        assert_eq!(out.len(), 16_000);
        let amplitude = tone_amplitude(middle(&out), 16_000, 1000.0);
        assert!((amplitude - 1.0).abs() < 0.05, "amplitude {amplitude}");
        // 1 kHz over 0.8 s: 1600 sign changes.
        let changes = sign_changes(middle(&out));
        assert!(changes.abs_diff(1600) <= 2, "{changes} sign changes");
    }

    #[test]
    fn downsampling_keeps_7khz_and_removes_11khz_instead_of_aliasing_it() {
        let kept = resample(&sine(7000.0, 48_000, 1.0, 1.0), 48_000, 16_000);
        let amplitude = tone_amplitude(middle(&kept), 16_000, 7000.0);
        assert!(db(amplitude).abs() < 0.5, "7 kHz at {} dB", db(amplitude));

        // 11 kHz is above the new Nyquist (8 kHz); without filtering it would
        // fold back to 5 kHz at full strength.
        let removed = resample(&sine(11_000.0, 48_000, 1.0, 1.0), 48_000, 16_000);
        let alias = tone_amplitude(middle(&removed), 16_000, 5000.0);
        let level = rms_level(middle(&removed)) * std::f32::consts::SQRT_2;
        assert!(db(alias) < -70.0, "alias at {} dB", db(alias));
        assert!(db(level) < -70.0, "residue at {} dB", db(level));
    }

    #[test]
    fn resampling_44k1_and_22k05_to_16k_keeps_length_and_frequency() {
        for rate in [44_100, 22_050] {
            let input = sine(1000.0, rate, 1.0, 0.5);
            let out = resample(&input, rate, 16_000);
            assert_eq!(out.len(), 16_000, "from {rate}");
            let amplitude = tone_amplitude(middle(&out), 16_000, 1000.0);
            assert!((amplitude - 0.5).abs() < 0.025, "from {rate}: {amplitude}");
            let changes = sign_changes(middle(&out));
            assert!(changes.abs_diff(1600) <= 2, "from {rate}: {changes}");
        }
        // round(len * to / from): 441 * 16000 / 44100 = 160, 1000 -> 362.8.
        assert_eq!(resample(&[0.0; 441], 44_100, 16_000).len(), 160);
        assert_eq!(resample(&[0.0; 1000], 44_100, 16_000).len(), 363);
    }

    #[test]
    fn upsampling_8k_to_16k_keeps_the_tone_without_an_image() {
        let out = resample(&sine(1000.0, 8000, 1.0, 1.0), 8000, 16_000);
        assert_eq!(out.len(), 16_000);
        let amplitude = tone_amplitude(middle(&out), 16_000, 1000.0);
        assert!((amplitude - 1.0).abs() < 0.05, "amplitude {amplitude}");
        assert!(sign_changes(middle(&out)).abs_diff(1600) <= 2);
        // Zero-stuffing without a filter would leave a mirror image at 7 kHz.
        let image = tone_amplitude(middle(&out), 16_000, 7000.0);
        assert!(db(image) < -70.0, "image at {} dB", db(image));
    }

    #[test]
    fn resampling_at_equal_rates_returns_the_input_unchanged() {
        let input = sine(440.0, 16_000, 0.1, 0.7);
        assert_eq!(resample(&input, 16_000, 16_000), input);
    }

    #[test]
    fn resampling_empty_input_or_a_zero_rate_gives_nothing() {
        assert!(resample(&[], 48_000, 16_000).is_empty());
        assert!(resample(&[0.5; 100], 0, 16_000).is_empty());
        assert!(resample(&[0.5; 100], 48_000, 0).is_empty());
    }

    #[test]
    fn resampling_a_constant_keeps_it_constant_away_from_the_edges() {
        let out = resample(&[0.5; 44_100], 44_100, 16_000);
        assert!(middle(&out).iter().all(|s| (s - 0.5).abs() < 1e-4));
    }

    #[test]
    fn an_awkward_ratio_interpolates_between_filter_phases_accurately() {
        // 44 099 and 16 000 share no factor: 16 000 phases, more than the
        // table keeps, so neighbouring phases are interpolated.
        let resampler = Resampler::new(44_099, 16_000);
        assert!(matches!(resampler.mode, Mode::Interpolated));
        let input = sine(1000.0, 44_099, 0.5, 1.0);
        let out = resampler.process(&input);
        assert_eq!(out.len(), 8000);
        let amplitude = tone_amplitude(middle(&out), 16_000, 1000.0);
        assert!((amplitude - 1.0).abs() < 0.05, "amplitude {amplitude}");

        let exact = Resampler::with_table_limit(44_099, 16_000, 0);
        assert!(matches!(exact.mode, Mode::Direct));
        let reference = exact.process(&input);
        let worst = out
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(db(worst) < -80.0, "interpolation error {} dB", db(worst));
    }

    #[test]
    fn the_filter_table_gives_the_same_output_as_the_direct_kernel() {
        let input = sine(3000.0, 48_000, 0.05, 0.9);
        let table = Resampler::new(48_000, 16_000);
        assert!(matches!(table.mode, Mode::Table));
        let direct = Resampler::with_table_limit(48_000, 16_000, 0);
        for (a, b) in table.process(&input).iter().zip(direct.process(&input)) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    // --- downmix, padding, levels ------------------------------------------

    #[test]
    fn downmix_averages_the_channels_of_each_frame() {
        assert_eq!(
            downmix(&[1.0, 0.0, 0.5, -0.5, -1.0, -1.0], 2),
            vec![0.5, 0.0, -1.0]
        );
        assert_eq!(downmix(&[0.3, 0.6, 0.9], 3), vec![0.6]);
        assert_eq!(downmix(&[0.1, 0.2], 1), vec![0.1, 0.2]);
    }

    #[test]
    fn downmix_drops_a_partial_frame_and_treats_zero_channels_as_empty() {
        assert_eq!(downmix(&[1.0, 1.0, 0.5], 2), vec![1.0]);
        assert!(downmix(&[1.0, 1.0], 0).is_empty());
    }

    #[test]
    fn padding_adds_exactly_half_a_second_of_silence_on_each_side() {
        let clip = vec![0.25f32; 1234];
        let padded = pad_for_whisper(clip.clone());
        assert_eq!(PAD_SAMPLES, 8000);
        assert_eq!(padded.len(), 1234 + 16_000);
        assert!(padded[..8000].iter().all(|&s| s == 0.0));
        assert_eq!(&padded[8000..8000 + 1234], clip.as_slice());
        assert!(padded[8000 + 1234..].iter().all(|&s| s == 0.0));
        assert_eq!(pad_for_whisper(Vec::new()).len(), 16_000);
    }

    #[test]
    fn level_of_silence_is_the_floor_and_of_a_full_scale_sine_about_minus_3_dbfs() {
        assert_eq!(level_dbfs(&[0.0; 1000]), SILENCE_FLOOR_DBFS);
        assert_eq!(level_dbfs(&[]), SILENCE_FLOOR_DBFS);
        assert_eq!(level_dbfs(&[1e-9; 100]), SILENCE_FLOOR_DBFS);
        assert_eq!(level_dbfs(&[f32::NAN; 4]), SILENCE_FLOOR_DBFS);
        let sine = sine(1000.0, 16_000, 1.0, 1.0);
        assert!((rms_level(&sine) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-3);
        assert!((level_dbfs(&sine) + 3.01).abs() < 0.05);
        assert!((level_dbfs(&[0.5; 10]) + 6.02).abs() < 0.01);
    }

    #[test]
    fn silence_threshold_separates_a_dead_microphone_from_quiet_speech() {
        assert!(level_dbfs(&[0.0; 16_000]) <= SILENCE_DBFS);
        // Hiss at about -70 dBFS.
        let hiss: Vec<f32> = (0..16_000)
            .map(|i| if i % 2 == 0 { 3e-4 } else { -3e-4 })
            .collect();
        assert!(level_dbfs(&hiss) <= SILENCE_DBFS);
        // A quiet voice-like tone at about -40 dBFS.
        assert!(level_dbfs(&sine(300.0, 16_000, 1.0, 0.014)) > SILENCE_DBFS);
    }

    // --- decoding -----------------------------------------------------------

    #[test]
    fn every_fixture_format_decodes_to_16k_mono_with_both_tones() {
        for (name, seconds) in FIXTURE_FILES {
            let samples = decode_file(&fixture(name)).unwrap();
            let expected = (seconds * WHISPER_RATE as f32) as usize;
            assert!(
                samples.len().abs_diff(expected) <= expected / 50,
                "{name}: {} samples, expected about {expected}",
                samples.len()
            );
            assert!(samples.iter().all(|s| (-1.0..=1.0).contains(s)), "{name}");
            let body = middle(&samples);
            for freq in [LEFT_HZ, RIGHT_HZ] {
                let amplitude = tone_amplitude(body, WHISPER_RATE, freq);
                assert!(
                    (amplitude - TONE_AMPLITUDE).abs() < 0.03,
                    "{name}: {freq} Hz at {amplitude}"
                );
            }
            let stray = tone_amplitude(body, WHISPER_RATE, 1000.0);
            assert!(stray < 0.01, "{name}: 1 kHz at {stray}");
        }
    }

    #[test]
    fn decoding_bytes_gives_the_same_samples_as_decoding_the_file() {
        for (name, _) in FIXTURE_FILES {
            let bytes = std::fs::read(fixture(name)).unwrap();
            let from_bytes = decode_bytes(name, bytes).unwrap();
            assert_eq!(from_bytes, decode_file(&fixture(name)).unwrap(), "{name}");
        }
    }

    #[test]
    fn wav_integer_depths_and_float_decode_to_the_same_signal() {
        let signal = sine(1000.0, 16_000, 0.1, 0.5);
        let cases: [(u16, u16, Vec<u8>); 5] = [
            (
                1,
                8,
                signal
                    .iter()
                    .map(|s| (s * 127.0 + 128.0).round() as u8)
                    .collect(),
            ),
            (
                1,
                16,
                signal
                    .iter()
                    .flat_map(|s| ((s * 32767.0).round() as i16).to_le_bytes())
                    .collect(),
            ),
            (
                1,
                24,
                signal
                    .iter()
                    .flat_map(|s| {
                        let b = ((s * 8_388_607.0).round() as i32).to_le_bytes();
                        [b[0], b[1], b[2]]
                    })
                    .collect(),
            ),
            (
                1,
                32,
                signal
                    .iter()
                    .flat_map(|s| ((f64::from(*s) * 2_147_483_647.0).round() as i32).to_le_bytes())
                    .collect(),
            ),
            (3, 32, signal.iter().flat_map(|s| s.to_le_bytes()).collect()),
        ];
        for (format, bits, data) in cases {
            let bytes = wav_bytes(format, bits, 1, 16_000, &data, None);
            let decoded = decode_bytes("clip.wav", bytes).unwrap();
            assert_eq!(decoded.len(), signal.len(), "{bits}-bit");
            let tolerance = if bits == 8 { 0.01 } else { 1e-4 };
            for (a, b) in decoded.iter().zip(&signal) {
                assert!((a - b).abs() < tolerance, "{bits}-bit: {a} vs {b}");
            }
        }
    }

    #[test]
    fn float_samples_out_of_range_or_not_finite_are_made_safe() {
        let values = [2.0f32, -3.0, f32::NAN, f32::INFINITY, 0.25];
        let data: Vec<u8> = values.iter().flat_map(|s| s.to_le_bytes()).collect();
        let bytes = wav_bytes(3, 32, 1, 16_000, &data, None);
        let decoded = decode_bytes("odd.wav", bytes).unwrap();
        assert_eq!(decoded, vec![1.0, -1.0, 0.0, 0.0, 0.25]);
    }

    #[test]
    fn extensions_are_matched_without_regard_to_case() {
        let bytes = std::fs::read(fixture("tone-48k-stereo.ogg")).unwrap();
        assert!(decode_bytes("Voice Memo.OGG", bytes).is_ok());
    }

    #[test]
    fn other_extensions_are_unsupported_before_the_file_is_read() {
        for (name, extension) in [("memo.m4a", "m4a"), ("notes.txt", "txt"), ("README", "")] {
            match decode_bytes(name, b"RIFF".to_vec()) {
                Err(Error::Voice(VoiceError::AudioUnsupported { extension: e, path })) => {
                    assert_eq!(e, extension);
                    assert_eq!(path, Path::new(name));
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // Checked before opening: a missing .m4a is unsupported, not missing.
        let err = decode_file(Path::new("/nonexistent/memo.m4a")).unwrap_err();
        assert!(
            matches!(err, Error::Voice(VoiceError::AudioUnsupported { .. })),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .ends_with(".m4a audio is not supported (wav, mp3, ogg, flac)"));
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.wav");
        match decode_file(&path) {
            Err(Error::Io { path: p, source }) => {
                assert_eq!(p, path);
                assert_eq!(source.kind(), ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_that_is_not_audio_is_unreadable_with_a_reason() {
        let no_format = "no known audio format was found in it";
        let cut_short = "the data ends before any audio";
        let cases: [(&str, Vec<u8>, &str); 4] = [
            (
                "garbage.wav",
                b"certainly not audio data. ".repeat(50),
                no_format,
            ),
            ("empty.mp3", Vec::new(), no_format),
            (
                "header-cut.wav",
                cut_fixture("tone-44k1-s16-stereo.wav", 0.0007),
                cut_short,
            ),
            (
                "header-cut.flac",
                cut_fixture("tone-22k05-stereo.flac", 0.001),
                cut_short,
            ),
        ];
        for (name, bytes, expected) in cases {
            let (_dir, path) = temp_file(name, &bytes);
            match decode_file(&path) {
                Err(Error::Voice(VoiceError::AudioUnreadable { path: p, reason })) => {
                    assert_eq!(p, path);
                    assert_eq!(reason, expected, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_wav_header_without_samples_is_unreadable() {
        let bytes = wav_bytes(1, 16, 1, 16_000, &[], None);
        match decode_bytes("silent.wav", bytes) {
            Err(Error::Voice(VoiceError::AudioUnreadable { reason, .. })) => {
                assert_eq!(reason, "no audio could be decoded from it");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_truncated_file_gives_the_audio_before_the_cut() {
        // (fixture, fraction kept, seconds expected at least, at most)
        let cases = [
            ("tone-44k1-s16-stereo.wav", 0.5, 0.09, 0.11),
            ("tone-48k-f32-stereo.wav", 0.5, 0.045, 0.055),
            ("tone-22k05-stereo.flac", 0.6, 0.2, 0.7),
            ("tone-44k1-stereo.mp3", 0.5, 0.4, 0.6),
            ("tone-48k-stereo.ogg", 0.8, 0.3, 0.9),
        ];
        for (name, fraction, min_s, max_s) in cases {
            let (_dir, path) = temp_file(name, &cut_fixture(name, fraction));
            let samples = decode_file(&path).unwrap();
            let seconds = samples.len() as f32 / WHISPER_RATE as f32;
            assert!((min_s..=max_s).contains(&seconds), "{name}: {seconds} s");
            let amplitude = tone_amplitude(middle(&samples), WHISPER_RATE, LEFT_HZ);
            assert!(
                (amplitude - TONE_AMPLITUDE).abs() < 0.03,
                "{name}: {amplitude}"
            );
        }
    }

    #[test]
    fn every_cut_and_corruption_of_a_fixture_ends_without_panicking() {
        for (name, _) in FIXTURE_FILES {
            let bytes = std::fs::read(fixture(name)).unwrap();
            for cut in (0..bytes.len()).step_by(bytes.len() / 16 + 1) {
                let _ = decode_bytes(name, bytes[..cut].to_vec());
            }
            // Flip bytes through the file, a few at a time.
            let mut state = 0x2545_f491_u32;
            for _ in 0..6 {
                let mut damaged = bytes.clone();
                for _ in 0..20 {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    let at = state as usize % damaged.len();
                    damaged[at] ^= (state >> 24) as u8 | 1;
                }
                if let Ok(samples) = decode_bytes(name, damaged) {
                    assert!(samples.iter().all(|s| (-1.0..=1.0).contains(s)));
                }
            }
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_as_too_long() {
        // 601 s of 8 kHz 16-bit silence: 9.6 MB.
        let data = vec![0u8; 601 * 8000 * 2];
        let (_dir, path) = temp_file("lecture.wav", &wav_bytes(1, 16, 1, 8000, &data, None));
        let err = decode_file(&path).unwrap_err();
        match &err {
            Error::Voice(VoiceError::AudioTooLong {
                what,
                seconds,
                limit,
            }) => {
                assert_eq!(what, "lecture.wav");
                assert!((seconds - 601.0).abs() < 1e-6);
                assert_eq!(*limit, MAX_SECONDS);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "lecture.wav: 601 s of audio is over the limit of 600 s"
        );
    }

    #[test]
    fn a_header_claiming_too_much_audio_is_refused_before_decoding() {
        // The header says 700 s at 16 kHz; only 0.1 s follows.
        let claimed = 700 * 16_000 * 2;
        let bytes = wav_bytes(1, 16, 1, 16_000, &[0u8; 3200], Some(claimed));
        let err = decode_bytes("claims.wav", bytes).unwrap_err();
        assert!(
            matches!(err, Error::Voice(VoiceError::AudioTooLong { seconds, .. }) if (seconds - 700.0).abs() < 1e-6),
            "{err:?}"
        );
    }

    #[test]
    fn the_limit_also_applies_while_decoding_audio_of_unknown_length() {
        // A streaming header (no length) so the in-decode check is the one
        // that counts; 2 s of audio against limits of 2 s and 1 s.
        let data: Vec<u8> = sine(500.0, 8000, 2.0, 0.5)
            .iter()
            .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
            .collect();
        let bytes = wav_bytes(1, 16, 1, 8000, &data, Some(u32::MAX));
        let origin = Origin {
            path: PathBuf::from("stream.wav"),
            is_file: false,
        };
        let decode =
            |limit| decode_source(Box::new(Cursor::new(bytes.clone())), "wav", &origin, limit);
        assert_eq!(decode(2).unwrap().len(), 32_000);
        match decode(1) {
            Err(Error::Voice(VoiceError::AudioTooLong {
                what,
                seconds,
                limit,
            })) => {
                assert_eq!(what, "stream.wav");
                assert_eq!(limit, 1);
                assert!(seconds > 1.0 && seconds <= 2.0, "{seconds}");
            }
            other => panic!("{other:?}"),
        }
    }
}

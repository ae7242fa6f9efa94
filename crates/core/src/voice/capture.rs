//! Push-to-talk recording from the default input device.
//!
//! The device layer is the [`AudioInput`] trait: [`CpalInput`] is the real one, tests inject
//! their own to cover a machine with no device, a device that cannot be opened, a denied
//! permission and a working device at any rate and channel count.
//!
//! Threading: a [`Recording`] owns one thread (`deskmate-mic`) that opens the stream, keeps it
//! alive (cpal streams are not `Send` on every platform, so they never leave that thread) and
//! collects samples until [`Recording::stop`] or [`Recording::cancel`]. The device's callback
//! only copies samples into a channel; levels (dBFS, about 20 per second) go to the caller's
//! `on_level`. The open result (device name, format, or the error) comes back before
//! [`Recording::start`] returns, so a missing microphone is an immediate, clear error.

use crate::error::VoiceError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::voice::audio;

/// Delivers interleaved `f32` samples in [-1, 1]; called from the device's own thread.
pub type SampleSink = Box<dyn FnMut(&[f32]) + Send>;

/// What an opened input delivers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputFormat {
    pub device: String,
    pub sample_rate: u32,
    pub channels: u16,
}

/// Keeps an open input stream alive; dropping it stops the stream.
pub trait InputStream {}

impl<T> InputStream for T {}

/// The hardware boundary: something that can open the default input device.
pub trait AudioInput: Send + Sync {
    /// The default device and its format, without opening a stream (the mic button's state).
    fn probe(&self) -> Result<InputFormat>;

    /// Opens the default device and starts delivering samples to `sink` until the returned
    /// stream is dropped. Called on the recording thread.
    fn open(&self, sink: SampleSink) -> Result<(InputFormat, Box<dyn InputStream>)>;
}

/// The longest recording kept: audio past this is dropped (the UI stops well before).
const MAX_RECORDING_SECONDS: u32 = 300;

/// How often the level is reported: every 50 ms of audio.
const LEVEL_WINDOW_MS: u32 = 50;

/// A recording in progress.
pub struct Recording {
    format: InputFormat,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Captured>>,
}

struct Captured {
    interleaved: Vec<f32>,
    truncated: bool,
}

impl Recording {
    /// Opens the default input of `input` and starts recording. `on_level` receives the level
    /// in dBFS (at or above [`audio::SILENCE_FLOOR_DBFS`]) about 20 times a second.
    pub fn start(
        input: Arc<dyn AudioInput>,
        on_level: impl Fn(f32) + Send + 'static,
    ) -> Result<Recording> {
        let (opened_tx, opened_rx) = mpsc::channel::<Result<InputFormat>>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("deskmate-mic".into())
            .spawn(move || record(input.as_ref(), &stop_flag, &opened_tx, &on_level))
            .map_err(|e| {
                Error::Voice(VoiceError::InputDeviceFailed {
                    device: "default".into(),
                    reason: format!("no thread for the recording: {e}"),
                })
            })?;
        let opened = opened_rx.recv().unwrap_or_else(|_| {
            Err(Error::Voice(VoiceError::InputDeviceFailed {
                device: "default".into(),
                reason: "the recording thread stopped while opening the device".into(),
            }))
        });
        match opened {
            Ok(format) => Ok(Recording {
                format,
                stop,
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    pub fn format(&self) -> &InputFormat {
        &self.format
    }

    /// Stops recording and returns the audio as whisper wants it: 16 kHz mono.
    pub fn stop(mut self) -> Result<Vec<f32>> {
        let captured = self.finish()?;
        let mono = audio::downmix(&captured.interleaved, self.format.channels);
        let samples = audio::resample(&mono, self.format.sample_rate, audio::WHISPER_RATE);
        if captured.truncated {
            tracing::warn!("recording cut at {MAX_RECORDING_SECONDS} s; the rest was not kept");
        }
        Ok(samples)
    }

    /// Stops recording and throws the audio away.
    pub fn cancel(mut self) {
        let _ = self.finish();
    }

    fn finish(&mut self) -> Result<Captured> {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self
            .thread
            .take()
            .ok_or(Error::Voice(VoiceError::NotRecording))?;
        thread.join().map_err(|_| {
            Error::Voice(VoiceError::InputDeviceFailed {
                device: self.format.device.clone(),
                reason: "the recording thread panicked".into(),
            })
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn record(
    input: &dyn AudioInput,
    stop: &AtomicBool,
    opened: &Sender<Result<InputFormat>>,
    on_level: &dyn Fn(f32),
) -> Captured {
    let (tx, rx) = mpsc::channel::<Vec<f32>>();
    let sink: SampleSink = Box::new(move |data: &[f32]| {
        // The receiver is gone only after the recording ended; nothing to do then.
        let _ = tx.send(data.to_vec());
    });
    let (format, stream) = match input.open(sink) {
        Ok(opened_stream) => opened_stream,
        Err(e) => {
            let _ = opened.send(Err(e));
            return Captured {
                interleaved: Vec::new(),
                truncated: false,
            };
        }
    };
    let _ = opened.send(Ok(format.clone()));
    let captured = collect(&rx, stop, &format, on_level);
    drop(stream);
    captured
}

fn collect(
    rx: &Receiver<Vec<f32>>,
    stop: &AtomicBool,
    format: &InputFormat,
    on_level: &dyn Fn(f32),
) -> Captured {
    let channels = usize::from(format.channels.max(1));
    let limit = format.sample_rate as usize * channels * MAX_RECORDING_SECONDS as usize;
    let window = (format.sample_rate * LEVEL_WINDOW_MS / 1000) as usize * channels;
    let mut interleaved = Vec::new();
    let mut pending_level = Vec::with_capacity(window);
    let mut truncated = false;
    while !stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(chunk) => {
                pending_level.extend_from_slice(&chunk);
                if pending_level.len() >= window.max(1) {
                    on_level(audio::level_dbfs(&pending_level));
                    pending_level.clear();
                }
                let room = limit.saturating_sub(interleaved.len());
                truncated |= chunk.len() > room;
                interleaved.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // What the device delivered before the stop is part of the recording.
    while let Ok(chunk) = rx.try_recv() {
        let room = limit.saturating_sub(interleaved.len());
        interleaved.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Captured {
        interleaved,
        truncated,
    }
}

/// An audio file played in real time as if spoken into a microphone, then silence: how the app
/// is driven end to end on machines without a microphone (`DESKMATE_TEST_MICROPHONE`).
#[derive(Debug, Clone)]
pub struct FileInput {
    path: std::path::PathBuf,
}

impl FileInput {
    pub fn new(path: std::path::PathBuf) -> FileInput {
        FileInput { path }
    }

    fn format(&self) -> InputFormat {
        InputFormat {
            device: format!("test microphone ({})", self.path.display()),
            sample_rate: audio::WHISPER_RATE,
            channels: 1,
        }
    }
}

struct PlayingFile {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for PlayingFile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl AudioInput for FileInput {
    fn probe(&self) -> Result<InputFormat> {
        if self.path.is_file() {
            Ok(self.format())
        } else {
            Err(Error::Voice(VoiceError::NoInputDevice))
        }
    }

    fn open(&self, mut sink: SampleSink) -> Result<(InputFormat, Box<dyn InputStream>)> {
        let samples = audio::decode_file(&self.path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("deskmate-test-mic".into())
            .spawn(move || {
                let chunk = (audio::WHISPER_RATE / 100) as usize; // 10 ms
                let silence = vec![0.0f32; chunk];
                let mut position = 0;
                while !flag.load(Ordering::SeqCst) {
                    let end = (position + chunk).min(samples.len());
                    match samples.get(position..end).filter(|s| !s.is_empty()) {
                        Some(speech) => sink(speech),
                        None => sink(&silence),
                    }
                    position = end;
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
            .map_err(|e| {
                Error::Voice(VoiceError::InputDeviceFailed {
                    device: self.format().device,
                    reason: e.to_string(),
                })
            })?;
        Ok((
            self.format(),
            Box::new(PlayingFile {
                stop,
                thread: Some(thread),
            }),
        ))
    }
}

/// The system's default input device through cpal.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpalInput;

mod cpal_input {
    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    use cpal::{FromSample, SampleFormat, SizedSample};

    use super::{AudioInput, InputFormat, InputStream, SampleSink};
    use crate::error::{Error, Result, VoiceError};

    impl AudioInput for super::CpalInput {
        fn probe(&self) -> Result<InputFormat> {
            let (device, config) = default_input()?;
            Ok(InputFormat {
                device: device_name(&device),
                sample_rate: config.sample_rate(),
                channels: config.channels(),
            })
        }

        fn open(&self, sink: SampleSink) -> Result<(InputFormat, Box<dyn InputStream>)> {
            let (device, config) = default_input()?;
            let name = device_name(&device);
            let format = InputFormat {
                device: name.clone(),
                sample_rate: config.sample_rate(),
                channels: config.channels(),
            };
            let stream = match config.sample_format() {
                SampleFormat::F32 => build::<f32>(&device, &config, sink),
                SampleFormat::I16 => build::<i16>(&device, &config, sink),
                SampleFormat::I32 => build::<i32>(&device, &config, sink),
                SampleFormat::U16 => build::<u16>(&device, &config, sink),
                SampleFormat::U8 => build::<u8>(&device, &config, sink),
                SampleFormat::I8 => build::<i8>(&device, &config, sink),
                other => {
                    return Err(Error::Voice(VoiceError::InputDeviceFailed {
                        device: name,
                        reason: format!("its sample format {other} is not supported"),
                    }))
                }
            }
            .map_err(|e| device_error(&name, &e))?;
            stream.play().map_err(|e| device_error(&name, &e))?;
            Ok((format, Box::new(stream)))
        }
    }

    fn default_input() -> Result<(cpal::Device, cpal::SupportedStreamConfig)> {
        let host = cpal::default_host();
        let device = host
            .default_input_device()
            .ok_or(Error::Voice(VoiceError::NoInputDevice))?;
        // On a machine without a sound card cpal still returns a default device; the failure
        // only shows when its configuration is asked for. With no input device at all that is
        // "no device", not "the device failed".
        match device.default_input_config() {
            Ok(config) => Ok((device, config)),
            Err(e) => {
                let any_input = host.input_devices().map(|mut d| d.next().is_some());
                if matches!(any_input, Ok(false)) {
                    Err(Error::Voice(VoiceError::NoInputDevice))
                } else {
                    Err(device_error(&device_name(&device), &e))
                }
            }
        }
    }

    fn device_name(device: &cpal::Device) -> String {
        let name = device.to_string();
        if name.is_empty() {
            "default".to_owned()
        } else {
            name
        }
    }

    fn build<T>(
        device: &cpal::Device,
        config: &cpal::SupportedStreamConfig,
        mut sink: SampleSink,
    ) -> std::result::Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        let mut converted = Vec::new();
        device.build_input_stream::<T, _, _>(
            config.config(),
            move |data: &[T], _| {
                converted.clear();
                converted.extend(
                    data.iter()
                        .map(|&s| <f32 as FromSample<T>>::from_sample_(s)),
                );
                sink(&converted);
            },
            |e| tracing::warn!("audio input: {e}"),
            None,
        )
    }

    fn device_error(device: &str, e: &cpal::Error) -> Error {
        match e.kind() {
            cpal::ErrorKind::PermissionDenied => Error::Voice(VoiceError::InputPermissionDenied {
                device: device.to_owned(),
            }),
            cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::HostUnavailable => {
                Error::Voice(VoiceError::NoInputDevice)
            }
            _ => Error::Voice(VoiceError::InputDeviceFailed {
                device: device.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use super::*;

    /// A device that behaves as the test says: missing, failing, denied, or a tone generator
    /// delivering `chunk` frames every 5 ms from its own thread, like a sound card.
    enum FakeInput {
        Missing,
        Fails,
        Denied,
        Tone { rate: u32, channels: u16, hz: f32 },
    }

    struct ToneStream {
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for ToneStream {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    impl AudioInput for FakeInput {
        fn probe(&self) -> Result<InputFormat> {
            match self {
                FakeInput::Missing => Err(Error::Voice(VoiceError::NoInputDevice)),
                FakeInput::Fails => Err(Error::Voice(VoiceError::InputDeviceFailed {
                    device: "USB mic".into(),
                    reason: "device busy".into(),
                })),
                FakeInput::Denied => Err(Error::Voice(VoiceError::InputPermissionDenied {
                    device: "USB mic".into(),
                })),
                FakeInput::Tone { rate, channels, .. } => Ok(InputFormat {
                    device: "fake".into(),
                    sample_rate: *rate,
                    channels: *channels,
                }),
            }
        }

        fn open(&self, mut sink: SampleSink) -> Result<(InputFormat, Box<dyn InputStream>)> {
            let format = self.probe()?;
            let FakeInput::Tone { rate, channels, hz } = *self else {
                unreachable!("probe failed above")
            };
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let frames = (rate / 200) as usize; // 5 ms
                let mut n = 0usize;
                while !flag.load(Ordering::SeqCst) {
                    let mut chunk = Vec::with_capacity(frames * usize::from(channels));
                    for _ in 0..frames {
                        let v = (2.0 * std::f32::consts::PI * hz * n as f32 / rate as f32).sin();
                        chunk.extend(std::iter::repeat_n(v * 0.5, usize::from(channels)));
                        n += 1;
                    }
                    sink(&chunk);
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            Ok((
                format,
                Box::new(ToneStream {
                    stop,
                    thread: Some(thread),
                }),
            ))
        }
    }

    #[test]
    fn no_device_a_failing_device_and_a_denied_permission_are_clear_errors_at_start() {
        for (input, code) in [
            (FakeInput::Missing, "no_input_device"),
            (FakeInput::Fails, "input_device_failed"),
            (FakeInput::Denied, "input_permission_denied"),
        ] {
            let err = Recording::start(Arc::new(input), |_| {})
                .err()
                .expect("start must fail");
            assert_eq!(err.code(), code);
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn a_stereo_48k_recording_comes_back_as_16k_mono_with_levels_on_the_way() {
        let levels = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&levels);
        let input = FakeInput::Tone {
            rate: 48_000,
            channels: 2,
            hz: 440.0,
        };
        let recording =
            Recording::start(Arc::new(input), move |l| seen.lock().unwrap().push(l)).unwrap();
        assert_eq!(recording.format().sample_rate, 48_000);
        std::thread::sleep(Duration::from_millis(400));
        let samples = recording.stop().unwrap();
        // About 0.4 s at 16 kHz; the fake device's timing is loose on a busy machine.
        assert!(
            (3_000..=16_000).contains(&samples.len()),
            "{} samples",
            samples.len()
        );
        let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((0.4..0.6).contains(&peak), "peak {peak}");
        let levels = levels.lock().unwrap();
        assert!(!levels.is_empty(), "no level reported");
        // A sine at half scale is about -9 dBFS.
        assert!(
            levels.iter().all(|l| (-10.0..-8.0).contains(l)),
            "{levels:?}"
        );
    }

    #[test]
    fn a_cancelled_recording_releases_the_device() {
        let input = Arc::new(FakeInput::Tone {
            rate: 16_000,
            channels: 1,
            hz: 200.0,
        });
        let recording = Recording::start(input.clone(), |_| {}).unwrap();
        recording.cancel();
        // The device can be opened again at once.
        let again = Recording::start(input, |_| {}).unwrap();
        assert!(again.stop().is_ok());
    }
}

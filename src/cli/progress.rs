//! Progress bars (indicatif) on a terminal; nothing otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapkeep::{Phase, Progress};

/// Draws a bar on stderr when it is a terminal.
pub struct CliProgress {
    bar: Option<ProgressBar>,
}

impl CliProgress {
    pub fn new(draw: bool) -> Self {
        let bar = draw.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {prefix}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        CliProgress { bar }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for CliProgress {
    fn phase(&self, phase: Phase, total_bytes: u64, _total_files: u64) {
        if let Some(b) = &self.bar {
            b.set_message(phase.name());
            b.set_length(total_bytes);
            b.set_position(0);
        }
    }

    fn advance(&self, bytes: u64, files: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
            if files > 0 {
                let done: u64 = b.prefix().trim_end_matches(" files").parse().unwrap_or(0);
                b.set_prefix(format!("{} files", done + files));
            }
        }
    }

    fn warn(&self, message: &str) {
        if let Some(b) = &self.bar {
            b.println(format!("warning: {message}"));
        }
    }
}

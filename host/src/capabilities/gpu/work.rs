//! Submitted work: command buffers encoded and submitted, buffers read back, and what
//! the GPU thread waits on until they finish.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::GpuError;
use super::protocol::{Command, ObjectId, PassCommand, Reply, count_dispatches};
use super::session::{DeviceCtx, Session};

/// Most workgroups one dispatch may run: nothing can stop a dispatch once started, so
/// its size is bounded up front (2^24 workgroups is a 32768² matmul in 8×8 tiles).
const MAX_WORKGROUPS: u64 = 1 << 24;

/// What a request led to: an answer now, or GPU work to wait for.
pub(super) enum Outcome {
    Ready(Reply),
    Wait(Wait),
}

/// Submitted work whose answer comes when it finishes.
pub(super) struct Wait {
    pub(super) index: wgpu::SubmissionIndex,
    kind: WaitKind,
}

enum WaitKind {
    /// A submission; the flag is set when the queue finishes it.
    Submit(Arc<AtomicBool>),
    /// A mapping for a read; the slot is filled when the buffer is mapped.
    Read {
        buffer: wgpu::Buffer,
        range: Range<u64>,
        slot: MapSlot,
    },
}

type MapSlot = Arc<Mutex<Option<Result<(), wgpu::BufferAsyncError>>>>;

impl Wait {
    /// Whether the work has finished.
    pub(super) fn finished(&self) -> bool {
        match &self.kind {
            WaitKind::Submit(done) => done.load(Ordering::Acquire),
            WaitKind::Read { slot, .. } => slot.lock().is_ok_and(|s| s.is_some()),
        }
    }

    /// Whether it is a submission (rather than a read), for the statistics.
    pub(super) fn is_submit(&self) -> bool {
        matches!(self.kind, WaitKind::Submit(_))
    }
}

impl DeviceCtx {
    pub(super) fn submit(
        &self,
        s: &mut Session,
        command_buffers: &[Vec<Command>],
    ) -> Result<Outcome, GpuError> {
        let dispatches = count_dispatches(command_buffers);
        let limit = u64::from(self.config.call_dispatches);
        if s.dispatches.saturating_add(dispatches) > limit {
            return Err(GpuError::LimitExceeded(format!(
                "{dispatches} more dispatches would bring this call to {}, over its limit of \
                 {limit}",
                s.dispatches + dispatches
            )));
        }
        self.require_time(s)?;
        let session: &Session = s;
        let commands = self.scoped(|| {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
            for command in command_buffers.iter().flatten() {
                self.encode(session, &mut encoder, command)?;
            }
            Ok(encoder.finish())
        })?;
        let index = self.scoped(|| Ok(self.queue.submit([commands])))?;
        s.dispatches += dispatches;
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        self.queue
            .on_submitted_work_done(move || flag.store(true, Ordering::Release));
        Ok(Outcome::Wait(Wait {
            index,
            kind: WaitKind::Submit(done),
        }))
    }

    fn encode(
        &self,
        s: &Session,
        encoder: &mut wgpu::CommandEncoder,
        command: &Command,
    ) -> Result<(), GpuError> {
        match *command {
            Command::CopyBufferToBuffer {
                source,
                source_offset,
                destination,
                destination_offset,
                size,
            } => {
                let (from, to) = (s.buffer(source)?, s.buffer(destination)?);
                check_range("copy source", from.size(), source_offset, size)?;
                check_range("copy destination", to.size(), destination_offset, size)?;
                encoder.copy_buffer_to_buffer(from, source_offset, to, destination_offset, size);
            }
            Command::ClearBuffer {
                buffer,
                offset,
                size,
            } => {
                let b = s.buffer(buffer)?;
                let len = size.unwrap_or(b.size().saturating_sub(offset));
                check_range("clear-buffer", b.size(), offset, len)?;
                encoder.clear_buffer(b, offset, size);
            }
            Command::ComputePass(ref commands) => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                let max = self.limits.max_compute_workgroups_per_dimension;
                for c in commands {
                    match *c {
                        PassCommand::SetPipeline(id) => pass.set_pipeline(s.pipeline(id)?),
                        PassCommand::SetBindGroup(index, id) => {
                            pass.set_bind_group(index, s.bind_group(id)?, &[]);
                        }
                        PassCommand::Dispatch(x, y, z) => {
                            let total = u64::from(x) * u64::from(y) * u64::from(z);
                            if x > max || y > max || z > max || total > MAX_WORKGROUPS {
                                return Err(GpuError::LimitExceeded(format!(
                                    "dispatch of {x}×{y}×{z} workgroups: at most {max} per \
                                     dimension and {MAX_WORKGROUPS} in all"
                                )));
                            }
                            pass.dispatch_workgroups(x, y, z);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn read(
        &self,
        s: &mut Session,
        id: ObjectId,
        offset: u64,
        size: Option<u64>,
    ) -> Result<Outcome, GpuError> {
        let buffer = s.buffer(id)?.clone();
        let total = buffer.size();
        let size = size.unwrap_or(total.saturating_sub(offset));
        check_range("buffer.read", total, offset, size)?;
        self.require_time(s)?;
        let usage = buffer.usage();
        let (target, range, index) = if size == 0 {
            return Ok(Outcome::Ready(Reply::Bytes(Vec::new())));
        } else if usage.contains(wgpu::BufferUsages::MAP_READ) {
            if !offset.is_multiple_of(wgpu::MAP_ALIGNMENT) {
                return Err(GpuError::validation(format!(
                    "buffer.read of a map-read buffer: the offset ({offset}) must be a \
                     multiple of 8"
                )));
            }
            // An empty submission flushes pending writes and gives an index to wait on.
            let index = self.scoped(|| Ok(self.queue.submit([])))?;
            (buffer, offset..offset + size, index)
        } else if usage.contains(wgpu::BufferUsages::COPY_SRC) {
            self.scoped(|| {
                let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wasmhost read-back"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let mut encoder = self
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
                encoder.copy_buffer_to_buffer(&buffer, offset, &staging, 0, size);
                let index = self.queue.submit([encoder.finish()]);
                Ok((staging, 0..size, index))
            })?
        } else {
            return Err(GpuError::validation(
                "buffer.read needs a buffer created with copy-src (or map-read) usage",
            ));
        };
        let slot: MapSlot = Arc::default();
        let filled = slot.clone();
        self.scoped(|| {
            target.map_async(wgpu::MapMode::Read, range.clone(), move |result| {
                if let Ok(mut slot) = filled.lock() {
                    *slot = Some(result);
                }
            });
            Ok(())
        })?;
        Ok(Outcome::Wait(Wait {
            index,
            kind: WaitKind::Read {
                buffer: target,
                range,
                slot,
            },
        }))
    }

    /// The answer of finished work.
    pub(super) fn complete(&self, wait: Wait) -> Result<Reply, GpuError> {
        match wait.kind {
            WaitKind::Submit(_) => Ok(Reply::Done),
            WaitKind::Read {
                buffer,
                range,
                slot,
            } => {
                let mapped = slot.lock().ok().and_then(|mut s| s.take());
                match mapped {
                    Some(Ok(())) => self.scoped(|| {
                        let bytes = match buffer.slice(range).get_mapped_range() {
                            Ok(view) => Ok(view.to_vec()),
                            Err(e) => Err(GpuError::Internal(format!(
                                "cannot read the mapped buffer: {e}"
                            ))),
                        };
                        buffer.unmap();
                        bytes.map(Reply::Bytes)
                    }),
                    Some(Err(e)) => Err(GpuError::validation(format!(
                        "cannot map the buffer for reading: {e}"
                    ))),
                    None => Err(GpuError::Internal("the read finished unmapped".into())),
                }
            }
        }
    }
}

/// Checks that `len` bytes at `offset` fit in a buffer of `size` bytes, both aligned to 4.
pub(super) fn check_range(what: &str, size: u64, offset: u64, len: u64) -> Result<(), GpuError> {
    let align = wgpu::COPY_BUFFER_ALIGNMENT;
    if !offset.is_multiple_of(align) || !len.is_multiple_of(align) {
        return Err(GpuError::validation(format!(
            "{what}: offset ({offset}) and size ({len}) must be multiples of 4 bytes"
        )));
    }
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(GpuError::validation(format!(
            "{what}: {len} bytes at offset {offset} do not fit in a buffer of {size} bytes"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_must_fit_and_align() {
        assert!(check_range("x", 16, 0, 16).is_ok());
        assert!(check_range("x", 16, 16, 0).is_ok());
        assert!(check_range("x", 16, 4, 16).is_err());
        assert!(check_range("x", 16, 2, 4).is_err());
        assert!(check_range("x", 16, 0, 6).is_err());
        assert!(check_range("x", u64::MAX, u64::MAX - 3, 8).is_err());
    }
}

//! Command encoders, compute passes and the queue: commands are recorded in the store
//! (ids of GPU-thread objects, nothing touches wgpu) and encoded on the GPU thread at
//! `submit`, where every problem becomes an error value.

use wasmtime::component::Resource;

use super::GpuError;
use super::bindings::compute::{HostCommandBuffer, HostCommandEncoder, HostComputePass, HostQueue};
use super::host::{
    Answer, GpuBindGroup, GpuBuffer, GpuComputePipeline, GpuCtxView, GpuQueue, answer,
};
use super::protocol::{Command, PassCommand, Reply, Request};

/// Most commands one encoder or pass may record.
const MAX_COMMANDS: usize = 100_000;

/// Commands being recorded.
#[derive(Default)]
pub struct GpuCommandEncoder {
    commands: Vec<Command>,
    open_pass: bool,
    finished: bool,
    /// Set when recording went wrong in a way reported only at `finish`.
    error: Option<GpuError>,
}

/// A compute pass being recorded; a child of its encoder in the table.
pub struct GpuComputePass {
    encoder: u32,
    commands: Vec<PassCommand>,
    ended: bool,
    error: Option<GpuError>,
}

/// Finished commands, consumed by `submit`.
pub struct GpuCommandBuffer(Vec<Command>);

impl HostCommandEncoder for GpuCtxView<'_> {
    async fn begin_compute_pass(
        &mut self,
        encoder: Resource<GpuCommandEncoder>,
    ) -> Answer<Resource<GpuComputePass>> {
        let e = self.table.get_mut(&encoder)?;
        if let Err(err) = e.recording() {
            return answer(Err(err));
        }
        e.open_pass = true;
        let pass = GpuComputePass {
            encoder: encoder.rep(),
            commands: Vec::new(),
            ended: false,
            error: None,
        };
        Ok(Ok(self.table.push_child(pass, &encoder)?))
    }

    async fn copy_buffer_to_buffer(
        &mut self,
        encoder: Resource<GpuCommandEncoder>,
        source: Resource<GpuBuffer>,
        source_offset: u64,
        destination: Resource<GpuBuffer>,
        destination_offset: u64,
        size: u64,
    ) -> Answer<()> {
        let command = Command::CopyBufferToBuffer {
            source: self.table.get(&source)?.id,
            source_offset,
            destination: self.table.get(&destination)?.id,
            destination_offset,
            size,
        };
        answer(self.table.get_mut(&encoder)?.record(command))
    }

    async fn clear_buffer(
        &mut self,
        encoder: Resource<GpuCommandEncoder>,
        buffer: Resource<GpuBuffer>,
        offset: u64,
        size: Option<u64>,
    ) -> Answer<()> {
        let command = Command::ClearBuffer {
            buffer: self.table.get(&buffer)?.id,
            offset,
            size,
        };
        answer(self.table.get_mut(&encoder)?.record(command))
    }

    async fn finish(
        &mut self,
        encoder: Resource<GpuCommandEncoder>,
    ) -> Answer<Resource<GpuCommandBuffer>> {
        let e = self.table.get_mut(&encoder)?;
        if let Err(err) = e.recording() {
            return answer(Err(err));
        }
        e.finished = true;
        if let Some(err) = e.error.take() {
            return answer(Err(err));
        }
        let commands = std::mem::take(&mut e.commands);
        Ok(Ok(self.table.push(GpuCommandBuffer(commands))?))
    }

    async fn drop(&mut self, rep: Resource<GpuCommandEncoder>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl GpuCommandEncoder {
    /// Whether the encoder takes commands now.
    fn recording(&self) -> Result<(), GpuError> {
        if self.finished {
            Err(GpuError::validation(
                "the command encoder is already finished",
            ))
        } else if self.open_pass {
            Err(GpuError::validation(
                "the command encoder has an open compute pass; end it first",
            ))
        } else {
            Ok(())
        }
    }

    fn record(&mut self, command: Command) -> Result<(), GpuError> {
        self.recording()?;
        if self.commands.len() >= MAX_COMMANDS {
            return Err(GpuError::LimitExceeded(format!(
                "a command encoder records at most {MAX_COMMANDS} commands"
            )));
        }
        self.commands.push(command);
        Ok(())
    }
}

impl HostComputePass for GpuCtxView<'_> {
    async fn set_pipeline(
        &mut self,
        pass: Resource<GpuComputePass>,
        pipeline: Resource<GpuComputePipeline>,
    ) -> wasmtime::Result<()> {
        let id = self.table.get(&pipeline)?.0;
        self.table
            .get_mut(&pass)?
            .record(PassCommand::SetPipeline(id));
        Ok(())
    }

    async fn set_bind_group(
        &mut self,
        pass: Resource<GpuComputePass>,
        index: u32,
        group: Resource<GpuBindGroup>,
    ) -> wasmtime::Result<()> {
        let id = self.table.get(&group)?.0;
        self.table
            .get_mut(&pass)?
            .record(PassCommand::SetBindGroup(index, id));
        Ok(())
    }

    async fn dispatch_workgroups(
        &mut self,
        pass: Resource<GpuComputePass>,
        x: u32,
        y: Option<u32>,
        z: Option<u32>,
    ) -> wasmtime::Result<()> {
        let command = PassCommand::Dispatch(x, y.unwrap_or(1), z.unwrap_or(1));
        self.table.get_mut(&pass)?.record(command);
        Ok(())
    }

    async fn end(&mut self, pass: Resource<GpuComputePass>) -> Answer<()> {
        let p = self.table.get_mut(&pass)?;
        if p.ended {
            return answer(Err(GpuError::validation("the compute pass already ended")));
        }
        p.ended = true;
        let commands = std::mem::take(&mut p.commands);
        let error = p.error.take();
        let encoder = Resource::<GpuCommandEncoder>::new_borrow(p.encoder);
        let e = self.table.get_mut(&encoder)?;
        e.open_pass = false;
        if let Some(err) = error {
            e.error.get_or_insert(err.clone());
            return answer(Err(err));
        }
        answer(e.record(Command::ComputePass(commands)))
    }

    async fn drop(&mut self, rep: Resource<GpuComputePass>) -> wasmtime::Result<()> {
        let pass = self.table.delete(rep)?;
        if !pass.ended {
            let encoder = Resource::<GpuCommandEncoder>::new_borrow(pass.encoder);
            if let Ok(e) = self.table.get_mut(&encoder) {
                e.open_pass = false;
                e.error.get_or_insert(GpuError::validation(
                    "a compute pass was dropped without end()",
                ));
            }
        }
        Ok(())
    }
}

impl GpuComputePass {
    /// Records a command; a problem is kept and reported by `end`.
    fn record(&mut self, command: PassCommand) {
        if self.ended {
            self.error
                .get_or_insert(GpuError::validation("the compute pass already ended"));
        } else if self.commands.len() >= MAX_COMMANDS {
            self.error.get_or_insert(GpuError::LimitExceeded(format!(
                "a compute pass records at most {MAX_COMMANDS} commands"
            )));
        } else {
            self.commands.push(command);
        }
    }
}

impl HostCommandBuffer for GpuCtxView<'_> {
    async fn drop(&mut self, rep: Resource<GpuCommandBuffer>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl HostQueue for GpuCtxView<'_> {
    async fn write_buffer(
        &mut self,
        _: Resource<GpuQueue>,
        buffer: Resource<GpuBuffer>,
        offset: u64,
        data: Vec<u8>,
    ) -> Answer<()> {
        let buffer = self.table.get(&buffer)?.id;
        let request = Request::WriteBuffer {
            buffer,
            offset,
            data,
        };
        answer(self.call(request).await.and_then(Reply::done))
    }

    async fn submit(
        &mut self,
        _: Resource<GpuQueue>,
        command_buffers: Vec<Resource<GpuCommandBuffer>>,
    ) -> Answer<()> {
        let command_buffers = command_buffers
            .into_iter()
            .map(|cb| Ok(self.table.delete(cb)?.0))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let request = Request::Submit { command_buffers };
        answer(self.call(request).await.and_then(Reply::done))
    }

    async fn drop(&mut self, rep: Resource<GpuQueue>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders_refuse_commands_while_a_pass_is_open() {
        let mut e = GpuCommandEncoder {
            open_pass: true,
            ..Default::default()
        };
        let clear = Command::ClearBuffer {
            buffer: 1,
            offset: 0,
            size: None,
        };
        assert!(e.record(clear.clone()).is_err());
        e.open_pass = false;
        assert!(e.record(clear).is_ok());
        e.finished = true;
        assert!(e.recording().is_err());
    }
}

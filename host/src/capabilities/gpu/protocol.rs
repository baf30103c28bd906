//! What stores send to the GPU thread and what comes back. Objects are named by ids that
//! are unique within a session (one store); the wgpu objects never leave the thread.

use tokio::sync::oneshot;

use super::GpuError;

/// Names one object of a session on the GPU thread.
pub(super) type ObjectId = u32;

/// A message to the GPU thread.
pub(super) enum Message {
    /// Runs `request` for `session` and answers on `reply`.
    Call {
        session: u64,
        request: Request,
        reply: oneshot::Sender<Result<Reply, GpuError>>,
    },
    /// The guest dropped a handle: free the object.
    Free { session: u64, id: ObjectId },
    /// The store ended: free everything the session holds.
    EndSession { session: u64 },
}

/// How a shader sees one buffer binding of an explicit layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BindingKind {
    Uniform,
    Storage,
    ReadOnlyStorage,
}

/// One buffer bound in a bind group.
#[derive(Debug, Clone, Copy)]
pub(super) struct BindEntry {
    pub binding: u32,
    pub buffer: ObjectId,
    pub offset: u64,
    pub size: Option<u64>,
}

/// One guest-driven operation.
pub(super) enum Request {
    CreateBuffer {
        label: Option<String>,
        size: u64,
        usage: wgpu::BufferUsages,
    },
    CreateShader {
        label: Option<String>,
        code: String,
    },
    CreateBindGroupLayout {
        entries: Vec<(u32, BindingKind)>,
    },
    CreatePipelineLayout {
        layouts: Vec<ObjectId>,
    },
    CreatePipeline {
        label: Option<String>,
        module: ObjectId,
        entry_point: Option<String>,
        layout: Option<ObjectId>,
    },
    /// The layout of one bind group of a pipeline.
    PipelineBindGroupLayout {
        pipeline: ObjectId,
        index: u32,
    },
    CreateBindGroup {
        label: Option<String>,
        layout: ObjectId,
        entries: Vec<BindEntry>,
    },
    WriteBuffer {
        buffer: ObjectId,
        offset: u64,
        data: Vec<u8>,
    },
    /// Encodes and runs command buffers, answering once they finish.
    Submit {
        command_buffers: Vec<Vec<Command>>,
    },
    /// Copies bytes back, answering once they are on the host.
    ReadBuffer {
        buffer: ObjectId,
        offset: u64,
        size: Option<u64>,
    },
    /// Frees a buffer's memory now (the handle stays, later uses fail).
    DestroyBuffer {
        buffer: ObjectId,
    },
}

/// What a request produced.
#[derive(Debug)]
pub(super) enum Reply {
    Object(ObjectId),
    Done,
    Bytes(Vec<u8>),
}

impl Reply {
    /// The object id of a `create-*` answer.
    pub(super) fn object(self) -> Result<ObjectId, GpuError> {
        match self {
            Reply::Object(id) => Ok(id),
            other => Err(unexpected(&other)),
        }
    }

    /// The bytes of a read answer.
    pub(super) fn bytes(self) -> Result<Vec<u8>, GpuError> {
        match self {
            Reply::Bytes(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }

    /// A request that produces nothing.
    pub(super) fn done(self) -> Result<(), GpuError> {
        match self {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(reply: &Reply) -> GpuError {
    GpuError::Internal(format!("unexpected answer from the GPU thread: {reply:?}"))
}

/// A recorded command of a command buffer.
#[derive(Debug, Clone)]
pub(super) enum Command {
    CopyBufferToBuffer {
        source: ObjectId,
        source_offset: u64,
        destination: ObjectId,
        destination_offset: u64,
        size: u64,
    },
    ClearBuffer {
        buffer: ObjectId,
        offset: u64,
        size: Option<u64>,
    },
    ComputePass(Vec<PassCommand>),
}

/// A recorded command of a compute pass.
#[derive(Debug, Clone, Copy)]
pub(super) enum PassCommand {
    SetPipeline(ObjectId),
    SetBindGroup(u32, ObjectId),
    Dispatch(u32, u32, u32),
}

/// Dispatches in a set of command buffers.
pub(super) fn count_dispatches(command_buffers: &[Vec<Command>]) -> u64 {
    command_buffers
        .iter()
        .flatten()
        .map(|c| match c {
            Command::ComputePass(pass) => pass
                .iter()
                .filter(|p| matches!(p, PassCommand::Dispatch(..)))
                .count() as u64,
            _ => 0,
        })
        .sum()
}

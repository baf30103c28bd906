//! `web_server`: a `wasi:cli` command that listens on a TCP port through wasi:sockets.
//! Each instance gets its own loopback port: the guest's bind of its inner port (say
//! 8000) is rewritten to a free host port, so two guests that both bind 8000 run side by
//! side. The guest may bind and accept on that port only; it cannot connect anywhere.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::InstantiateError;
use super::world::Prepared;
use super::{CallError, EndpointSpec, Engine, Limits, LoadedComponent, classify, forward_output};

/// A running web server: the host port it listens on and, once it stopped, why.
#[derive(Clone)]
pub struct WebServer {
    /// The loopback port the guest's inner port is mapped to.
    pub port: u16,
    /// The guest's inner port (what it thinks it listens on).
    pub inner_port: u16,
    exited: Arc<Mutex<Option<String>>>,
}

impl WebServer {
    /// Why the guest stopped, if it did.
    pub fn exited(&self) -> Option<String> {
        self.exited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The web server of one component, started on first use.
#[derive(Default)]
pub(crate) struct WebServerSlot {
    running: tokio::sync::Mutex<Option<WebServer>>,
}

/// How long a web server instance may run (it serves until the host stops).
const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

impl Engine {
    /// The component's web server, started now if it is not running (again, if it stopped).
    pub async fn web_server(
        &self,
        component: &LoadedComponent,
        spec: &EndpointSpec,
    ) -> Result<WebServer, CallError> {
        let code = self.code(component).await?;
        let Prepared::Command(pre) = &**code else {
            return Err(CallError::MissingExport("wasi:cli run"));
        };
        let mut slot = component.web_server.running.lock().await;
        if let Some(server) = &*slot
            && server.exited().is_none()
        {
            return Ok(server.clone());
        }
        let inner_port = self.config.web_server_port;
        let port =
            free_port().map_err(|e| CallError::from(InstantiateError::NoPort(Arc::new(e))))?;
        let limits = Limits {
            timeout: LIFETIME,
            memory_mib: self.limits_for(spec).memory_mib,
        };
        let mut store = self.new_store_with(
            &self.runtime.engine,
            limits,
            Some((inner_port, port)),
            component.context(),
            self.no_gpu("web servers cannot use the GPU"),
            self.outbound_for(component, &spec.name),
        )?;
        let server = WebServer {
            port,
            inner_port,
            exited: Arc::new(Mutex::new(None)),
        };
        let exited = server.exited.clone();
        let pre = pre.clone();
        let (app, function) = (component.manifest.app.clone(), spec.name.clone());
        tokio::spawn(async move {
            let run = async {
                let command = pre.instantiate_async(&mut store).await?;
                command.wasi_cli_run().call_run(&mut store).await
            };
            let why = match run.await {
                Ok(Ok(())) => "the server exited".to_string(),
                Ok(Err(())) => "the server exited with an error".to_string(),
                Err(e) => classify(e, store.data(), limits).to_string(),
            };
            forward_output(&app, &function, store.data());
            tracing::warn!(app, "web server stopped: {why}");
            *exited.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        });
        *slot = Some(server.clone());
        Ok(server)
    }
}

/// A loopback port that is free now.
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

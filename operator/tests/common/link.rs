//! A TCP relay to a database server that a test can cut and restore: the network fault a process
//! sees when its database goes away while the server itself stays up. Shared by the operator's
//! outage test (`operator_cluster.rs`) and the portal's (`standalone_db_outage.rs`).

use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP link on 127.0.0.1 to a database server that a test can cut (every connection through it
/// closed, new ones closed at once) and restore. Made and used inside a tokio runtime (it relays
/// on the runtime's tasks).
pub struct Link {
    /// The URL to connect through the link.
    pub url: String,
    up: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Link {
    /// A link to the host and port of `url` (a `postgres://` URL), open.
    pub async fn to(url: &str) -> Self {
        let mut through = url::Url::parse(url).expect("a database URL");
        let server = format!(
            "{}:{}",
            through.host_str().expect("the URL names a host"),
            through.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the link");
        let port = listener.local_addr().expect("the link's address").port();
        through.set_port(Some(port)).expect("a URL with a port");
        let up = Arc::new(watch::channel(true).0);
        let task = tokio::spawn({
            let up = Arc::clone(&up);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let mut state = up.subscribe();
                    if !*state.borrow_and_update() {
                        continue; // dropped: closed at once
                    }
                    let server = server.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&server).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = state.wait_for(|up| !*up) => {}
                        }
                    });
                }
            }
        });
        Self {
            url: through.to_string(),
            up,
            task,
        }
    }

    /// Closes every connection through the link and every new one, until [`Link::restore`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.up.send_replace(false);
        self.task.abort();
    }
}

//! `wasmhost logs`: an app's log lines (guest output and host events of its calls and
//! web requests), and with `--follow` new lines as they are written.

use serde_json::Value;

use super::client::{Client, ServerFlags};
use super::remote::text;

/// Arguments of `wasmhost logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// App name or id.
    app: String,
    /// Keep printing new lines as they come (Ctrl-C stops).
    #[arg(long, short)]
    follow: bool,
    /// Only this function's or web endpoint's lines.
    #[arg(long)]
    function: Option<String>,
    /// Only lines since then: a duration back from now (`10m`, `1h`) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// At most this many of the newest lines before following.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Print each line as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerFlags,
}

pub(super) async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let app = client.find_app(&args.app).await?;
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(f) = &args.function {
        query.push(("function", f.clone()));
    }
    if let Some(s) = &args.since {
        query.push(("since", s.clone()));
    }
    let path = format!("/apps/{}/logs", text(&app["app_id"]));
    if !args.follow {
        let lines = client
            .send(client.request(reqwest::Method::GET, &path).query(&query))
            .await?;
        for line in lines["data"].as_array().into_iter().flatten() {
            print_line(line, args.json);
        }
        return Ok(());
    }
    query.push(("follow", "true".into()));
    let mut response = client
        .open(client.request(reqwest::Method::GET, &path).query(&query))
        .await?;
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            handle_event(&event, args.json);
        }
    }
    eprintln!("the server closed the stream");
    Ok(())
}

/// Prints one server-sent event (`log` lines; `lagged` says lines were skipped).
fn handle_event(event: &str, json: bool) {
    let mut name = "message";
    let mut data = String::new();
    for line in event.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        }
    }
    let Ok(value) = serde_json::from_str::<Value>(&data) else {
        return; // a keep-alive comment
    };
    match name {
        "log" => print_line(&value, json),
        "lagged" => eprintln!(
            "({} line(s) skipped: this client fell behind)",
            value["missed"]
        ),
        _ => {}
    }
}

fn print_line(line: &Value, json: bool) {
    if json {
        println!("{line}");
        return;
    }
    let call = line["call_id"].as_str().unwrap_or("-");
    println!(
        "{} {} {} {:<6} {}",
        text(&line["time"]),
        text(&line["function"]),
        call,
        text(&line["stream"]),
        text(&line["text"])
    );
}

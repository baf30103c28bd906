//! A wasi:cli command that prints a line and then idles without ever listening: served
//! as a web server, it never binds its port (the tests' "startup timeout" case).

fn main() {
    println!("hello from a command that never listens");
    std::thread::sleep(std::time::Duration::from_secs(3600));
}

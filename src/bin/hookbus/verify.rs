//! `hookbus verify`: does a captured request's signature verify?

use time::OffsetDateTime;

use crate::scheme::{Checker, Headers, SigningArgs, text_or_file};
use crate::{EXIT_FAILED, Failure};

/// Check whether a captured request verifies.
///
/// Example, with a request saved by `hookbus listen --save DIR`:
///   hookbus verify --scheme standard --secret S --header @DIR/0001.headers --body @DIR/0001.body
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    signing: SigningArgs,
    /// A request header, 'Name: value', or @file with one header per line; repeat as needed.
    #[arg(
        long = "header",
        short = 'H',
        value_name = "'NAME: VALUE' | @FILE",
        required = true
    )]
    headers: Vec<String>,
    /// The raw body: text, or @file (byte for byte as received).
    #[arg(long, value_name = "TEXT | @FILE")]
    body: String,
    /// Largest accepted timestamp age in seconds; 0 skips the check (for old captures).
    #[arg(long, default_value_t = 300)]
    max_age: u64,
}

fn parse_header_line(line: &str) -> Result<(String, String), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("header {line:?} is not 'Name: value'"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("header {line:?} has no name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    let secret = args.signing.secret().ok_or_else(|| {
        Failure::input("error: verify needs the secret: pass --secret or set HOOKBUS_SECRET")
    })?;
    let mut headers = Headers::default();
    for h in &args.headers {
        let text = text_or_file("--header", h)?;
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = if h.starts_with('@') {
            text.lines().filter(|l| !l.trim().is_empty()).collect()
        } else {
            vec![&text]
        };
        for line in lines {
            headers.0.push(
                parse_header_line(line)
                    .map_err(|e| Failure::input(format!("error: --header: {e}")))?,
            );
        }
    }
    let body = text_or_file("--body", &args.body)?;
    let checker = Checker::new(
        &args.signing,
        secret,
        (args.max_age > 0).then_some(args.max_age),
    )?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match checker.check(&headers, &body, now) {
        Ok(()) => {
            println!(
                "OK: the {} signature verifies ({} byte body)",
                args.signing.scheme,
                body.len()
            );
            Ok(())
        }
        Err(why) => {
            println!("FAILED: {why}");
            Err(Failure {
                code: EXIT_FAILED,
                message: String::new(),
            })
        }
    }
}

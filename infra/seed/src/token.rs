//! Prints an HS256 access token signed with AUTH_TOKEN_SECRET (the stack's AuthTokenSecret).
//!
//! Usage: AUTH_TOKEN_SECRET=… catalog-token [--subject NAME] [--ttl SECONDS]

use catalog_core::auth;

fn main() -> Result<(), String> {
    let secret = std::env::var("AUTH_TOKEN_SECRET").map_err(|_| {
        "AUTH_TOKEN_SECRET is not set (scripts/token reads it from .local/auth-secret)".to_owned()
    })?;
    let (mut subject, mut ttl) = ("dev".to_owned(), 12 * 3600_i64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--subject" => subject = value,
            "--ttl" => {
                ttl = value
                    .parse()
                    .map_err(|_| format!("--ttl {value:?} is not a number of seconds"))?
            }
            other => {
                return Err(format!(
                    "unknown option {other}; use --subject NAME --ttl SECONDS"
                ))
            }
        }
    }
    println!("{}", auth::issue(secret.as_bytes(), &subject, ttl));
    Ok(())
}

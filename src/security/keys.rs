//! `strand auth`: make an ingest API key and the hash config stores.

use clap::Subcommand;
use std::io::Read as _;

use super::auth::key_hash_string;

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Print a new random API key and the `api_key_hash` for it.
    NewKey,
    /// Read a key from stdin (one line) and print its `api_key_hash`.
    HashKey,
}

/// A key of 32 random bytes from the OS generator, hex, prefixed so it
/// is recognisable in a secret scanner.
pub fn new_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(format!("strand_{}", hex::encode(bytes)))
}

pub fn run(cmd: &AuthCommand) -> anyhow::Result<()> {
    match cmd {
        AuthCommand::NewKey => {
            let key = new_key()?;
            println!("key:          {key}");
            println!("api_key_hash: {}", key_hash_string(&key));
            println!();
            println!("Give the key to the client (authorization: Bearer <key>) and put the hash");
            println!("in an [[ingest.clients]] entry; the key itself is not stored anywhere.");
        }
        AuthCommand::HashKey => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let key = input.lines().next().unwrap_or("").trim();
            anyhow::ensure!(!key.is_empty(), "no key on stdin");
            println!("{}", key_hash_string(key));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_distinct_and_long() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), "strand_".len() + 64);
        assert!(key_hash_string(&a).starts_with("sha256:"));
    }
}

//! `--listen` endpoints: `http://HOST:PORT`, `grpc://HOST:PORT`, `http+unix:///PATH`,
//! `grpc+unix:///PATH`.

use crate::error::StartError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Which protocol an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Grpc,
}

/// Where an endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// One endpoint to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub scheme: Scheme,
    pub address: Address,
}

impl Listen {
    /// Parses a `--listen` URL; `localhost` is 127.0.0.1; port 0 picks a free port.
    pub fn parse(url: &str) -> Result<Self, StartError> {
        let bad = |problem: &str| StartError::Listen { url: url.into(), problem: problem.into() };
        let forms = "expected http://HOST:PORT, grpc://HOST:PORT, http+unix:///PATH or grpc+unix:///PATH";
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad(forms))?;
        let (scheme, unix) = match scheme {
            "http" => (Scheme::Http, false),
            "grpc" => (Scheme::Grpc, false),
            "http+unix" => (Scheme::Http, true),
            "grpc+unix" => (Scheme::Grpc, true),
            _ => return Err(bad(forms)),
        };
        if unix {
            if !rest.starts_with('/') || rest.len() < 2 {
                return Err(bad("a Unix socket needs an absolute path (three slashes: grpc+unix:///tmp/l.sock)"));
            }
            return Ok(Self { scheme, address: Address::Unix(PathBuf::from(rest)) });
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port (e.g. http://127.0.0.1:8000)"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        let ip: IpAddr = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            h => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| bad("the host is not an IP address (or localhost)"))?,
        };
        Ok(Self { scheme, address: Address::Tcp(SocketAddr::new(ip, port)) })
    }

    /// Reachable from this machine only: a Unix socket or a loopback address.
    pub fn is_local(&self) -> bool {
        match &self.address {
            Address::Unix(_) => true,
            Address::Tcp(a) => a.ip().is_loopback(),
        }
    }

    /// The URL with the port actually bound (`bound`, for port 0).
    pub fn url(&self, bound: Option<SocketAddr>) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Grpc => "grpc",
        };
        match &self.address {
            Address::Unix(p) => format!("{scheme}+unix://{}", p.display()),
            Address::Tcp(a) => format!("{scheme}://{}", bound.unwrap_or(*a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_forms_and_refuses_others() {
        let l = Listen::parse("grpc://127.0.0.1:0").unwrap();
        assert_eq!(l.scheme, Scheme::Grpc);
        assert!(l.is_local());
        let l = Listen::parse("http+unix:///tmp/x.sock").unwrap();
        assert_eq!(l.address, Address::Unix("/tmp/x.sock".into()));
        assert!(!Listen::parse("http://0.0.0.0:80").unwrap().is_local());
        assert!(Listen::parse("http://[::1]:80").unwrap().is_local());
        for bad in
            ["tcp://1.2.3.4:1", "http://host", "http://example.com:80", "grpc+unix://rel.sock", "http://1.2.3.4:99999"]
        {
            assert!(Listen::parse(bad).is_err(), "{bad}");
        }
    }
}

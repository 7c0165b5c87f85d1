//! The per-address limit on the purchase endpoints.
//!
//! Two GCRA limiters, like the seed's two throttler windows: a steady rate of
//! N per second with a burst of N, and M per 10 seconds with a burst of M.
//! Built once per process (outside `HttpServer::new`), or every actix worker
//! thread would count separately.

use std::{net::IpAddr, sync::Arc, time::Duration};

use actix_governor::{
    governor::{
        clock::{Clock, DefaultClock, QuantaInstant},
        middleware::NoOpMiddleware,
        NotUntil,
    },
    GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
};
use actix_web::{dev::ServiceRequest, http::header::HeaderMap, HttpResponse, HttpResponseBuilder};
use ipnet::IpNet;

use crate::error::{ErrorMessage, ErrorPayload};

/// The seed's throttler message, kept verbatim for its clients.
pub const IP_LIMIT_MESSAGE: &str = "ThrottlerException: Too Many Requests";

/// Keys requests by client address; `X-Forwarded-For` counts only when the
/// connection comes from a trusted proxy.
#[derive(Debug, Clone)]
pub struct ClientAddress {
    trusted: Arc<Vec<IpNet>>,
}

impl ClientAddress {
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self {
            trusted: Arc::new(trusted),
        }
    }

    fn is_trusted(&self, ip: &IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client's address: the peer, or, behind trusted proxies, the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy
    /// (entries left of it could have been written by the client).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(&ip) => continue,
                Ok(ip) => return ip,
                Err(_) => break,
            }
        }
        peer
    }
}

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<Self::Key, Self::KeyExtractionError> {
        let peer = req
            .peer_addr()
            .map(|addr| addr.ip())
            .ok_or_else(|| SimpleKeyExtractionError::new("no peer address"))?;
        Ok(self.client_ip(peer, req.headers()))
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative.wait_time_from(DefaultClock::default().now());
        let mut payload = ErrorPayload::new(ErrorMessage::Text(IP_LIMIT_MESSAGE.into()));
        payload.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        payload.respond(response)
    }
}

pub type IpLimit = GovernorConfig<ClientAddress, NoOpMiddleware<QuantaInstant>>;

/// A limiter allowing `count` requests per `per`, or `None` when `count` is 0.
pub fn limiter(count: u32, per: Duration, key: ClientAddress) -> Option<IpLimit> {
    if count == 0 {
        return None;
    }
    GovernorConfigBuilder::default()
        .period(per / count)
        .burst_size(count)
        .key_extractor(key)
        .finish()
}

/// Forgets idle addresses now and then so the limiters' memory stays bounded.
pub fn spawn_housekeeping(limits: Vec<IpLimit>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            for limit in &limits {
                limit.limiter().retain_recent();
                limit.limiter().shrink_to_fit();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(xff: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(xff).expect("valid header"),
        );
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid ip")
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let key = ClientAddress::new(vec!["10.0.0.0/8".parse().expect("net")]);
        assert_eq!(
            key.client_ip(ip("203.0.113.9"), &headers("1.2.3.4")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let key = ClientAddress::new(vec!["10.0.0.0/8".parse().expect("net")]);
        let forged_then_real = headers("6.6.6.6, 198.51.100.7, 10.0.0.2");
        assert_eq!(
            key.client_ip(ip("10.0.0.1"), &forged_then_real),
            ip("198.51.100.7")
        );
        assert_eq!(
            key.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_zero_limit_is_off() {
        let key = ClientAddress::new(vec![]);
        assert!(limiter(0, Duration::from_secs(1), key.clone()).is_none());
        assert!(limiter(10, Duration::from_secs(1), key).is_some());
    }
}

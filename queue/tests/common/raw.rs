//! A minimal blocking Kafka client over one TCP connection, for tests that
//! need exact requests (bad CRCs, unsupported versions, huge frames).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub struct Raw {
    s: TcpStream,
    corr: i32,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Self { s, corr: 0 }
    }

    pub fn send_raw(&mut self, frame: &[u8]) {
        self.s.write_all(frame).expect("write");
    }

    pub fn send<R: Encodable>(&mut self, api: ApiKey, version: i16, req: &R) {
        self.corr += 1;
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = version;
        h.correlation_id = self.corr;
        h.client_id = Some(StrBytes::from_static_str("raw"));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        h.encode(&mut buf, api.request_header_version(version))
            .expect("header");
        req.encode(&mut buf, version).expect("body");
        let n = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&n.to_be_bytes());
        self.send_raw(&buf);
    }

    pub fn recv<R: Decodable>(&mut self, api: ApiKey, version: i16) -> R {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).expect("response length");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).expect("response body");
        let mut b = Bytes::from(body);
        let h = ResponseHeader::decode(&mut b, api.response_header_version(version))
            .expect("response header");
        assert_eq!(h.correlation_id, self.corr);
        let r = R::decode(&mut b, version).expect("response body decodes");
        assert!(!b.has_remaining());
        r
    }

    pub fn call<Q: Encodable, R: Decodable>(&mut self, api: ApiKey, version: i16, req: &Q) -> R {
        self.send(api, version, req);
        self.recv(api, version)
    }

    /// True when the server closed the connection (EOF) instead of answering.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0))
            || matches!(self.s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }
}

//! A one-request Kafka connection for the few calls the client's `Admin`
//! cannot make (the cluster-wide broker default config resource, named "").

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use anyhow::{anyhow, Context};

/// Largest response accepted (a DescribeConfigs answer is a few kilobytes).
const MAX_RESPONSE: usize = 64 << 20;

/// Sends `req` at `version` to the first reachable bootstrap server and
/// returns its response.
pub async fn request<R: Request>(
    bootstrap: &[String],
    timeout: std::time::Duration,
    version: i16,
    req: &R,
) -> anyhow::Result<R::Response> {
    let mut last = anyhow!("no bootstrap server given");
    for addr in bootstrap {
        match tokio::time::timeout(timeout, once::<R>(addr, version, req)).await {
            Ok(Ok(r)) => return Ok(r),
            Ok(Err(e)) => last = e,
            Err(_) => last = anyhow!("{addr}: no response within {timeout:?}"),
        }
    }
    Err(last)
}

async fn once<R: Request>(addr: &str, version: i16, req: &R) -> anyhow::Result<R::Response> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("gregor-tools")));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| anyhow!("encoding a request header: {e}"))?;
    req.encode(&mut buf, version)
        .map_err(|e| anyhow!("encoding a request: {e}"))?;
    let size = u32::try_from(buf.len() - 4).context("request too large")?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&buf).await.context(addr.to_string())?;
    let size = stream.read_u32().await.context(addr.to_string())? as usize;
    if size > MAX_RESPONSE {
        return Err(anyhow!("{addr}: response of {size} bytes is too large"));
    }
    let mut frame = vec![0u8; size];
    stream
        .read_exact(&mut frame)
        .await
        .context(addr.to_string())?;
    let mut frame = bytes::Bytes::from(frame);
    let h = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .map_err(|e| anyhow!("{addr}: bad response header: {e}"))?;
    if h.correlation_id != 1 {
        return Err(anyhow!(
            "{addr}: unexpected correlation id {}",
            h.correlation_id
        ));
    }
    let resp = R::Response::decode(&mut frame, version)
        .map_err(|e| anyhow!("{addr}: bad response: {e}"))?;
    if frame.has_remaining() {
        return Err(anyhow!(
            "{addr}: {} bytes after the response",
            frame.remaining()
        ));
    }
    Ok(resp)
}

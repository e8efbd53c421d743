//! Preloading: the workload's keys written before the measured run.

use super::*;

/// Sends the workload's preload steps over one connection, pipelined, and requires every
/// reply to be exactly right: a run against a server that cannot store the keys would
/// only measure errors.
pub(super) fn preload(
    config: &LoadConfig,
    connector: &Connector,
    workload: &Workload,
) -> Result<(), String> {
    let steps = workload.preload();
    if steps.is_empty() {
        return Ok(());
    }
    let proto = config.proto;
    connector.with_one_connection(config.addr, CONNECT_TIMEOUT, |mut stream| async move {
        let work = async {
            let mut input = Vec::with_capacity(READ_CHUNK);
            // CREATE first, alone: the PUTs depend on it.
            for batch in std::iter::once(&steps[..1]).chain(steps[1..].chunks(PRELOAD_BATCH)) {
                let out: Vec<u8> = batch
                    .iter()
                    .flat_map(|s| s.request.iter().copied())
                    .collect();
                stream
                    .write_all(&out)
                    .await
                    .map_err(|e| format!("preload write failed: {e}"))?;
                for step in batch {
                    loop {
                        match check(&input, &step.reply, proto, Op::Put) {
                            Verdict::Right(n) => {
                                input.drain(..n);
                                break;
                            }
                            Verdict::Wrong(n) => {
                                return Err(format!(
                                    "preload: {:?} was answered {:?}",
                                    String::from_utf8_lossy(&step.request),
                                    String::from_utf8_lossy(&input[..n])
                                ))
                            }
                            Verdict::Incomplete => match stream.read_some(&mut input).await {
                                Ok(0) => {
                                    return Err(
                                        "preload: the server closed the connection".to_string()
                                    )
                                }
                                Ok(_) => {}
                                Err(e) => return Err(format!("preload read failed: {e}")),
                            },
                        }
                    }
                }
            }
            Ok(())
        };
        timeout(PRELOAD_TIMEOUT, work)
            .await
            .map_err(|_| "preload timed out".to_string())?
    })
}

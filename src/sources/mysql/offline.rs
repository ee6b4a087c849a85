//! Offline decoding of a binlog file into the same change events the live stream produces.

use super::binlog::{BinlogDecoder, DecoderOptions, NoLookup};
use super::charset::CollationMap;
use super::SourceError;
use crate::config::TableFilter;
use crate::event::progress::Checkpoint;
use crate::event::{BinlogPosition, SourceMessage};
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::TransactionPayloadEvent;
use mysql_common::binlog::EventStreamReader;
use std::io::{BufReader, Read};
use std::path::Path;

const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
const HEADER_LEN: usize = 19;

/// Decodes every event of `path`, handing each message to `emit`. Truncated or corrupt files fail with
/// the offset of the first bad event.
pub async fn decode_file(
    path: &Path,
    filter: TableFilter,
    mut emit: impl FnMut(SourceMessage) -> Result<(), SourceError>,
) -> Result<u64, SourceError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let at = |pos: u64, detail: String| SourceError::CorruptBinlog {
        position: BinlogPosition::new(file_name.clone(), pos),
        detail,
    };
    let f = std::fs::File::open(path).map_err(|e| at(0, format!("cannot open: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, f);
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|e| at(0, format!("not a binlog file: {e}")))?;
    if magic != MAGIC {
        return Err(at(0, "not a binlog file (bad magic number)".into()));
    }
    let start = Checkpoint {
        next_seq: 1,
        position: BinlogPosition::new(file_name.clone(), 4),
        gtid: None,
        snapshot: None,
        xa: None,
        tables: Default::default(),
        sync: false,
    };
    let opts = DecoderOptions {
        filter,
        keys: Default::default(),
        collations: CollationMap::builtin(),
        allow_anonymous_columns: true,
        max_prepared_xa_bytes: usize::MAX,
        signal_table: None,
    };
    let mut decoder = BinlogDecoder::new(opts, &start, false, vec![]);
    let mut esr = EventStreamReader::new(BinlogVersion::Version4);
    let mut offset = 4u64;
    let mut out = Vec::new();
    let mut events = 0u64;
    loop {
        let mut buf = vec![0u8; HEADER_LEN];
        let got = read_full(&mut reader, &mut buf).map_err(|e| at(offset, e.to_string()))?;
        if got == 0 {
            break;
        }
        if got < HEADER_LEN {
            return Err(at(
                offset,
                format!("truncated event header ({got} of {HEADER_LEN} bytes)"),
            ));
        }
        let size = u32::from_le_bytes(buf[9..13].try_into().unwrap()) as usize;
        if size < HEADER_LEN {
            return Err(at(
                offset,
                format!("event size {size} is smaller than a header"),
            ));
        }
        buf.resize(size, 0);
        let got = read_full(&mut reader, &mut buf[HEADER_LEN..])
            .map_err(|e| at(offset, e.to_string()))?;
        if got < size - HEADER_LEN {
            return Err(at(
                offset,
                format!(
                    "truncated event: {} of {size} bytes present",
                    HEADER_LEN + got
                ),
            ));
        }
        let event = esr
            .read(&buf[..])
            .map_err(|e| at(offset, format!("undecodable event: {e}")))?
            .ok_or_else(|| at(offset, "empty event".into()))?;
        decoder.handle(&event, &mut out, &mut NoLookup).await?;
        if event.header().event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            let tpe: TransactionPayloadEvent<'_> = event
                .read_event()
                .map_err(|e| at(offset, format!("transaction payload: {e}")))?;
            let mut payload = tpe
                .decompressed()
                .map_err(|e| at(offset, format!("transaction payload: {e}")))?;
            while let Some(inner) = esr
                .read_decompressed(&mut payload)
                .map_err(|e| at(offset, format!("compressed event: {e}")))?
            {
                decoder.handle(&inner, &mut out, &mut NoLookup).await?;
            }
        }
        for msg in out.drain(..) {
            emit(msg)?;
        }
        events += 1;
        offset += size as u64;
    }
    Ok(events)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

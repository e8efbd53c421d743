use bytes::Bytes;

use crate::Error;

/// One request of the KV protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create {
        bucket: Bytes,
    },
    Put {
        bucket: Bytes,
        key: Bytes,
        value: Bytes,
    },
    Get {
        bucket: Bytes,
        key: Bytes,
    },
    Delete {
        bucket: Bytes,
        key: Bytes,
    },
    Ping,
}

impl Request {
    pub fn create(bucket: impl Into<Bytes>) -> Self {
        Request::Create {
            bucket: bucket.into(),
        }
    }

    pub fn put(bucket: impl Into<Bytes>, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Request::Put {
            bucket: bucket.into(),
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn get(bucket: impl Into<Bytes>, key: impl Into<Bytes>) -> Self {
        Request::Get {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    pub fn delete(bucket: impl Into<Bytes>, key: impl Into<Bytes>) -> Self {
        Request::Delete {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// Appends the request's wire form, `VERB words...\r\n`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (verb, words): (&[u8], [&[u8]; 3]) = match self {
            Request::Create { bucket } => (b"CREATE", [bucket, b"", b""]),
            Request::Put { bucket, key, value } => (b"PUT", [bucket, key, value]),
            Request::Get { bucket, key } => (b"GET", [bucket, key, b""]),
            Request::Delete { bucket, key } => (b"DELETE", [bucket, key, b""]),
            Request::Ping => (b"PING", [b"", b"", b""]),
        };
        out.extend_from_slice(verb);
        for word in words.iter().filter(|w| !w.is_empty()) {
            out.push(b' ');
            out.extend_from_slice(word);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Refuses words the protocol cannot carry: empty, or holding whitespace.
    pub fn validate(&self) -> Result<(), Error> {
        let words: &[&Bytes] = match self {
            Request::Create { bucket } => &[bucket],
            Request::Put { bucket, key, value } => &[bucket, key, value],
            Request::Get { bucket, key } | Request::Delete { bucket, key } => &[bucket, key],
            Request::Ping => &[],
        };
        for word in words {
            if word.is_empty() {
                return Err(Error::InvalidArgument("empty bucket, key or value"));
            }
            if word
                .iter()
                .any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            {
                return Err(Error::InvalidArgument("whitespace in bucket, key or value"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(request: Request) -> Vec<u8> {
        let mut out = Vec::new();
        request.encode(&mut out);
        out
    }

    #[test]
    fn encodes_each_request() {
        assert_eq!(wire(Request::create("b")), b"CREATE b\r\n");
        assert_eq!(wire(Request::put("b", "k", "v")), b"PUT b k v\r\n");
        assert_eq!(wire(Request::get("b", "k")), b"GET b k\r\n");
        assert_eq!(wire(Request::delete("b", "k")), b"DELETE b k\r\n");
        assert_eq!(wire(Request::Ping), b"PING\r\n");
    }

    #[test]
    fn refuses_words_the_protocol_cannot_carry() {
        assert!(Request::put("b", "k", "two words").validate().is_err());
        assert!(Request::get("b", "").validate().is_err());
        assert!(Request::create("a\nb").validate().is_err());
        assert!(Request::put("b", "k", "v").validate().is_ok());
    }
}

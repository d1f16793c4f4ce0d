//! Settings shared by the render tests.

use super::EtcdFiles;

pub(crate) fn settings() -> EtcdFiles {
    EtcdFiles {
        endpoints: vec![
            "https://10.0.0.11:2379".into(),
            "https://10.0.0.12:2379".into(),
        ],
        ca_file: "/etc/calico/certs/calico-node/ca.pem".into(),
        cert_file: "/etc/calico/certs/calico-node/cert.pem".into(),
        key_file: "/etc/calico/certs/calico-node/key.pem".into(),
    }
}

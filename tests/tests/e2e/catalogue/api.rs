//! The API and CSR rows: one etcd and one real server for all of them. Before the rows run, two
//! nodes enroll (`cat-a`, `cat-b`, auto-approved) and tokens are used up, expired or made for
//! other nodes. After each row the server's view (nodes, tokens, issued certificates) and etcd's
//! auth store must be exactly what they were.

use super::hostile::{client_cert, csr_text};
use super::{Failure, Input, Name, Row, Token, Who, shows};
use calseg_tests::api_client::{TestNode, admin_client, call, enroll_auto, https_client};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use serde_json::Value;
use std::time::Duration;

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node"
[components.kc]
grants = "kube-controllers"
component_identity = true
[components.cat-node]
grants = "calico-node-per-node"
[[hosts]]
match = "cat-*"
components = ["calico-node"]
"#
    )
}

/// The server, its nodes and the tokens the rows replay.
struct World {
    etcd: EtcdCluster,
    server: ServerProcess,
    node_a: TestNode,
    used: String,
    expired: String,
    for_other: String,
    wrong_secret: String,
    glob_used: String,
}

async fn enroll_with(server: &ServerProcess, node: &str, token: &str) {
    let mut enrolling = TestNode::new(node, &server.url(), &server.fleet_ca_pem()).expect("node");
    let answer = enrolling.enroll(Some(token)).await.expect("enroll");
    assert_eq!(answer.status, 200, "{node}: {answer:?}");
}

impl World {
    async fn start() -> Self {
        let etcd = EtcdCluster::start().await.expect("start etcd");
        let server = ServerProcess::start(
            &etcd,
            &policy(&etcd.endpoint(0)),
            "auto_approve = [\"cat-*\"]",
        )
        .await
        .expect("start server");
        let names = ["cat-a".to_owned(), "cat-b".to_owned()];
        let nodes = enroll_auto(&server.url(), &server.fleet_ca_pem(), &names)
            .await
            .expect("enroll cat-a and cat-b");
        let node_a = std::sync::Arc::try_unwrap(nodes.into_iter().next().expect("cat-a"))
            .unwrap_or_else(|_| panic!("cat-a is shared"));
        let used = server.token_for("tok-used", "1h").expect("token");
        enroll_with(&server, "tok-used", &used).await;
        let expired = server.token_for("tok-late", "1s").expect("token");
        let for_other = server.token_for("tok-other", "1h").expect("token");
        let (id, _) = for_other.split_once('.').expect("id.secret");
        let wrong_secret = format!("{id}.{}", "0".repeat(64));
        let glob_used = server
            .cli_ok(&["token", "create", "--match", "tok-g*", "--uses", "1"])
            .expect("glob token")
            .trim()
            .to_owned();
        enroll_with(&server, "tok-g1", &glob_used).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Self {
            etcd,
            server,
            node_a,
            used,
            expired,
            for_other,
            wrong_secret,
            glob_used,
        }
    }

    fn token(&self, token: Token) -> Option<String> {
        match token {
            Token::None => None,
            Token::Literal(text) => Some(text.to_owned()),
            Token::Used => Some(self.used.clone()),
            Token::Expired => Some(self.expired.clone()),
            Token::ForOtherNode => Some(self.for_other.clone()),
            Token::WrongSecret => Some(self.wrong_secret.clone()),
            Token::GlobExhausted => Some(self.glob_used.clone()),
        }
    }

    fn client(&self, who: Who) -> reqwest::Client {
        let ca = self.server.fleet_ca_pem();
        let ca_dir = self.server.state_dir().join("ca");
        let fleet_key = std::fs::read_to_string(ca_dir.join("fleet-key.pem")).expect("fleet key");
        let with = |cert: calseg_tests::pki::KeyedCert| {
            https_client(&ca, Some((&cert.cert_pem, &cert.key_pem))).expect("client")
        };
        match who {
            Who::Anonymous => https_client(&ca, None).expect("client"),
            Who::NodeA => self.node_a.client().expect("client"),
            Who::Admin => admin_client(&self.server).expect("admin client"),
            Who::OtherCa => with(self.etcd.mint_client("cat-a").expect("cert")),
            Who::ExpiredFleet => with(client_cert(&ca, &fleet_key, "cat-a", true)),
            Who::NotIssued => with(client_cert(&ca, &fleet_key, "cat-a", false)),
        }
    }

    /// Everything a refused request must leave alone: nodes (state, fleet certificate, last
    /// report), tokens (uses), certificates issued (the audit log's successful issues and
    /// enrollments) and etcd's users and roles.
    async fn snapshot(&self) -> String {
        let admin = admin_client(&self.server).expect("admin client");
        let get = |path: &'static str| {
            let admin = admin.clone();
            let url = format!("{}{path}", self.server.url());
            async move {
                let answer = call(admin.get(url)).await.expect("admin GET");
                assert_eq!(answer.status, 200, "{path}: {answer:?}");
                answer.body
            }
        };
        let audit = get("/v1/admin/audit").await;
        let granted: Vec<&Value> = audit
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["outcome"].as_str() != Some("denied"))
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "nodes {}\ntokens {}\ngranted {}\netcd {}",
            get("/v1/admin/nodes").await,
            get("/v1/admin/tokens").await,
            serde_json::to_string(&granted).unwrap_or_default(),
            self.etcd.auth_snapshot().await.expect("etcd snapshot"),
        )
    }

    /// Sends a row's request; the line the user sees.
    async fn send(&self, input: Input) -> String {
        let base = self.server.url();
        let (request, body) = match input {
            Input::Enroll {
                node,
                csr,
                token,
                extra,
            } => {
                let node = match node {
                    Name::Is(name) => name.to_owned(),
                    Name::Repeat(c, count) => c.to_string().repeat(count),
                };
                let mut json = serde_json::json!({"node": node, "csr_pem": csr_text(csr, &node)});
                if let Some(token) = self.token(token) {
                    json["token"] = token.into();
                }
                let client = self.client(Who::Anonymous);
                (
                    client.post(format!("{base}/v1/enroll")),
                    splice(&json, extra),
                )
            }
            Input::Sign {
                component,
                csr,
                extra,
            } => {
                let json = serde_json::json!({
                    "component": component,
                    "csr_pem": csr_text(csr, "calico-node.cat-a"),
                });
                let client = self.client(Who::NodeA);
                (
                    client.post(format!("{base}/v1/certificates")),
                    splice(&json, extra),
                )
            }
            Input::ComponentSign {
                component,
                who,
                csr,
            } => {
                let json = serde_json::json!({"csr_pem": csr_text(csr, "kc~all")});
                let path = calseg_api::paths::admin_component_certificate(component);
                (
                    self.client(who).post(format!("{base}{path}")),
                    json.to_string(),
                )
            }
            Input::Renew { csr } => {
                let json = serde_json::json!({"csr_pem": csr_text(csr, "cat-a")});
                let client = self.client(Who::NodeA);
                (
                    client.post(format!("{base}/v1/fleet/renew")),
                    json.to_string(),
                )
            }
            Input::Raw {
                method,
                path,
                who,
                content_type,
                body,
            } => {
                let client = self.client(who);
                let url = format!("{base}{path}");
                let mut request = match method {
                    "GET" => client.get(url),
                    "DELETE" => client.delete(url),
                    _ => client.post(url),
                };
                if let Some(content_type) = content_type {
                    request = request.header("content-type", content_type);
                }
                let body = body.map_or_else(|| "x".repeat(100 * 1024), str::to_owned);
                return seen(call(request.body(body)).await);
            }
            other => panic!("not an API row: {other:?}"),
        };
        seen(
            call(
                request
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await,
        )
    }
}

/// `json` with `extra` (`,"key":value...`) added inside its object.
fn splice(json: &Value, extra: &str) -> String {
    let text = json.to_string();
    format!("{}{extra}}}", &text[..text.len() - 1])
}

/// The user-visible line of an answer: `<status> <kind>: <message>` for the API's error body,
/// `<status> <text>` otherwise, `connection: <error chain>` when the connection was refused or closed.
fn seen(answer: anyhow::Result<calseg_tests::api_client::Answer>) -> String {
    match answer {
        Ok(answer) => match (
            answer.body["kind"].as_str(),
            answer.body["message"].as_str(),
        ) {
            (Some(kind), Some(message)) => {
                format!("{} {kind}: {message}", answer.status.as_u16())
            }
            _ => format!(
                "{} {}",
                answer.status.as_u16(),
                answer
                    .body
                    .as_str()
                    .map_or(answer.body.to_string(), str::to_owned)
            ),
        },
        Err(error) => {
            let mut chain = Vec::new();
            let mut source: Option<&dyn std::error::Error> = Some(error.as_ref());
            while let Some(e) = source {
                chain.push(e.to_string());
                source = e.source();
            }
            format!("connection: {}", chain.join(": "))
        }
    }
}

/// Runs the API, CSR and node-name rows against one server.
pub async fn run(rows: &[&Row]) -> Vec<Failure> {
    let world = World::start().await;
    // The reconciler gives cat-a and cat-b their etcd users; wait until etcd is settled.
    let mut before = world.snapshot().await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let again = world.snapshot().await;
        if again == before && again.contains("calico-node.cat-b") {
            break;
        }
        before = again;
    }
    let mut failures = Vec::new();
    for row in rows {
        let line = world.send(row.input).await;
        if !shows(&line, &row.expect) {
            failures.push(format!(
                "[{:?}] {}: want `{}`\n  saw `{line}`",
                row.area, row.name, row.expect
            ));
        }
        let after = world.snapshot().await;
        if after != before {
            failures.push(format!(
                "[{:?}] {}: the server or etcd changed:\nbefore {before}\nafter  {after}",
                row.area, row.name
            ));
            before = after;
        }
    }
    let log = world.server.log();
    if log.contains("panicked") {
        failures.push(format!("the server panicked:\n{log}"));
    }
    failures
}

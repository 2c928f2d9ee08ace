//! Credentials for a development set-up that configured none.
//!
//! On first start `switchboard up` generates an HS256 signing secret, an
//! intake API key and an event sealing key, keeps them in
//! `<data-dir>/dev-secrets.toml` (mode 0600), and writes
//! `<data-dir>/dev-credentials.env` with an API key and a token per staff role
//! that a shell can `source`. Every process pointed at the same data dir loads
//! the same secrets, so `serve` processes started side by side accept each
//! other's tokens.
//!
//! Tokens are minted deterministically from the secrets file (issued at its
//! creation time), so every process derives the same tokens and the env file
//! never changes under a developer who has sourced it.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    auth::{Role, TokenClaims, api_key_sha256, generate_api_key, mint_hs256_token},
    config::{ApiKeySettings, AuthSettings, EventKeySettings, JwtSettings, Settings, decode_key},
    error::{RuntimeError, RuntimeResult},
};

pub const DEV_SECRETS_FILE: &str = "dev-secrets.toml";
pub const DEV_CREDENTIALS_FILE: &str = "dev-credentials.env";
/// `iss` of development tokens; no real identity provider uses it.
pub const DEV_ISSUER: &str = "switchboard-dev";
/// `aud` of development tokens.
pub const DEV_AUDIENCE: &str = "switchboard";
const DEV_API_KEY_NAME: &str = "dev-intake";
const DEV_EVENT_KEY_ID: &str = "dev-1";
/// Long enough never to expire under a developer; these tokens only open a
/// local data dir's services.
const DEV_TOKEN_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 60 * 60;
/// The staff roles that get a token, with the env variable each is written to.
const STAFF_TOKENS: [(Role, &str); 4] = [
    (Role::Agent, "SWITCHBOARD_AGENT_TOKEN"),
    (Role::Supervisor, "SWITCHBOARD_SUPERVISOR_TOKEN"),
    (Role::Analyst, "SWITCHBOARD_ANALYST_TOKEN"),
    (Role::Admin, "SWITCHBOARD_ADMIN_TOKEN"),
];

/// The development secrets of one data dir and the credentials made from them.
#[derive(Debug, Clone)]
pub struct DevCredentials {
    pub secrets_path: PathBuf,
    pub env_path: PathBuf,
    /// HS256 secret the staff tokens are signed with.
    pub signing_secret: SecretString,
    /// `sbk_…`, role intake client.
    pub intake_key: SecretString,
    pub event_key: EventKeySettings,
    /// One token per staff role, in [`Role::ALL`] order.
    pub tokens: Vec<(Role, SecretString)>,
    created: bool,
}

/// The file format; `created_at` fixes the tokens' `iat`/`nbf`/`exp`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    created_at: u64,
    signing_secret: String,
    intake_key: String,
    event_key_id: String,
    event_key: String,
}

impl DevCredentials {
    /// Loads `<data_dir>/dev-secrets.toml`, creating it (and the data dir) on
    /// first use, and (re)writes `dev-credentials.env` if it is missing or stale.
    ///
    /// Safe when several processes start at once: each writes a complete file
    /// under a temporary name and links it into place only if no file is there
    /// yet (`persist_noclobber`); a loser reads the winner's file instead.
    pub fn load_or_create(data_dir: &Path) -> RuntimeResult<DevCredentials> {
        std::fs::create_dir_all(data_dir)
            .map_err(|error| RuntimeError::file("cannot create data dir", data_dir, error))?;
        let secrets_path = data_dir.join(DEV_SECRETS_FILE);
        let (file, created) = load_or_create_secrets(data_dir, &secrets_path)?;
        let credentials =
            DevCredentials::from_file(file, secrets_path, data_dir.join(DEV_CREDENTIALS_FILE), created)?;
        credentials.write_env_file(data_dir)?;
        if created {
            tracing::info!(path = %credentials.env_path.display(), "created development credentials");
        }
        Ok(credentials)
    }

    /// Whether this call generated the secrets (the first start).
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// The token for a staff role; intake clients use [`Self::intake_key`].
    pub fn token(&self, role: Role) -> Option<&SecretString> {
        self.tokens
            .iter()
            .find(|(token_role, _)| *token_role == role)
            .map(|(_, token)| token)
    }

    /// Auth settings accepting exactly these credentials.
    pub fn auth_settings(&self) -> AuthSettings {
        AuthSettings {
            api_keys: vec![ApiKeySettings {
                name: DEV_API_KEY_NAME.to_owned(),
                role: Role::IntakeClient,
                sha256: api_key_sha256(self.intake_key.expose_secret()),
            }],
            jwt: Some(JwtSettings {
                hs256_secret: Some(self.signing_secret.clone()),
                jwks_file: None,
                issuer: DEV_ISSUER.to_owned(),
                audience: DEV_AUDIENCE.to_owned(),
                leeway_seconds: 60,
            }),
        }
    }

    /// When `settings` configure neither auth nor event keys, fills both from
    /// the development credentials of `settings.data_dir` and returns them (so
    /// the binary can say where the env file is). Otherwise leaves `settings`
    /// alone and returns `None`: configured credentials are never mixed with
    /// development ones (config validation refuses half a configuration).
    pub fn apply_if_unconfigured(settings: &mut Settings) -> RuntimeResult<Option<DevCredentials>> {
        if settings.auth.is_configured() || !settings.event_keys.is_empty() {
            return Ok(None);
        }
        let credentials = DevCredentials::load_or_create(&settings.data_dir)?;
        settings.auth = credentials.auth_settings();
        settings.event_keys = vec![credentials.event_key.clone()];
        tracing::warn!(
            path = %credentials.env_path.display(),
            "no credentials configured: using development credentials, not for production"
        );
        Ok(Some(credentials))
    }

    fn from_file(
        file: SecretsFile,
        secrets_path: PathBuf,
        env_path: PathBuf,
        created: bool,
    ) -> RuntimeResult<Self> {
        let invalid = |message: &str| RuntimeError::DevCredentials {
            path: secrets_path.clone(),
            message: format!("{message}; delete the file to generate new development credentials"),
        };
        if file.signing_secret.len() < 32 {
            return Err(invalid("signing_secret is too short"));
        }
        if !file.intake_key.starts_with(crate::auth::API_KEY_PREFIX) {
            return Err(invalid("intake_key is not an sbk_ key"));
        }
        let event_key =
            decode_key(&file.event_key).ok_or_else(|| invalid("event_key is not base64 of 32 bytes"))?;
        let signing_secret = SecretString::from(file.signing_secret);
        let mut tokens = Vec::with_capacity(STAFF_TOKENS.len());
        for (role, _) in STAFF_TOKENS {
            let claims = TokenClaims {
                sub: format!("dev-{}", role.as_str()),
                roles: vec![role],
                iss: DEV_ISSUER.to_owned(),
                aud: DEV_AUDIENCE.to_owned(),
                iat: file.created_at,
                nbf: file.created_at,
                exp: file.created_at.saturating_add(DEV_TOKEN_LIFETIME_SECONDS),
            };
            tokens.push((
                role,
                SecretString::from(mint_hs256_token(&signing_secret, &claims)?),
            ));
        }
        Ok(DevCredentials {
            secrets_path,
            env_path,
            signing_secret,
            intake_key: SecretString::from(file.intake_key),
            event_key: EventKeySettings::new(file.event_key_id, event_key),
            tokens,
            created,
        })
    }

    /// A development token for any staff subject, e.g. one desktop per
    /// simulated agent in the demo, or one per agent in a test.
    pub fn staff_token(&self, subject: &str, role: Role) -> RuntimeResult<SecretString> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        // A minute's leeway for clocks of other processes on the machine.
        let not_before = now.saturating_sub(60);
        let claims = TokenClaims {
            sub: subject.to_owned(),
            roles: vec![role],
            iss: DEV_ISSUER.to_owned(),
            aud: DEV_AUDIENCE.to_owned(),
            iat: not_before,
            nbf: not_before,
            exp: now.saturating_add(DEV_TOKEN_LIFETIME_SECONDS),
        };
        Ok(SecretString::from(mint_hs256_token(
            &self.signing_secret,
            &claims,
        )?))
    }

    fn env_file_contents(&self) -> String {
        let mut contents = String::from(
            "# Development credentials for this data dir, written by switchboard.\n\
             # Not for production. Use with: source <data-dir>/dev-credentials.env\n",
        );
        contents.push_str(&format!(
            "SWITCHBOARD_INTAKE_KEY={}\n",
            self.intake_key.expose_secret()
        ));
        for (role, variable) in STAFF_TOKENS {
            if let Some(token) = self.token(role) {
                contents.push_str(&format!("{variable}={}\n", token.expose_secret()));
            }
        }
        contents
    }

    fn write_env_file(&self, data_dir: &Path) -> RuntimeResult<()> {
        let contents = self.env_file_contents();
        if std::fs::read_to_string(&self.env_path).is_ok_and(|existing| existing == contents) {
            return Ok(());
        }
        // Write-then-rename: a shell sourcing the file never sees half of it,
        // and two processes writing the same contents at once do no harm.
        let mut temporary = tempfile::NamedTempFile::new_in(data_dir)
            .map_err(|error| RuntimeError::file("cannot create temporary file in", data_dir, error))?;
        temporary
            .write_all(contents.as_bytes())
            .and_then(|()| temporary.as_file().sync_all())
            .map_err(|error| RuntimeError::file("cannot write", &self.env_path, error))?;
        temporary
            .persist(&self.env_path)
            .map_err(|error| RuntimeError::file("cannot write", &self.env_path, error.error))?;
        Ok(())
    }
}

fn load_or_create_secrets(data_dir: &Path, path: &Path) -> RuntimeResult<(SecretsFile, bool)> {
    if let Some(file) = read_secrets(path)? {
        return Ok((file, false));
    }
    let file = generate_secrets();
    let text = toml::to_string(&file).map_err(|error| RuntimeError::DevCredentials {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    // NamedTempFile is created 0600, so the secrets are never readable by
    // others, not even for a moment.
    let mut temporary = tempfile::NamedTempFile::new_in(data_dir)
        .map_err(|error| RuntimeError::file("cannot create temporary file in", data_dir, error))?;
    temporary
        .write_all(
            b"# Development secrets for this data dir, generated by switchboard. Not for production.\n",
        )
        .and_then(|()| temporary.write_all(text.as_bytes()))
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(|error| RuntimeError::file("cannot write", path, error))?;
    match temporary.persist_noclobber(path) {
        Ok(_) => Ok((file, true)),
        Err(error) if error.error.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process got there first; its secrets are the ones to share.
            let file = read_secrets(path)?.ok_or_else(|| RuntimeError::DevCredentials {
                path: path.to_path_buf(),
                message: "disappeared while being created".to_owned(),
            })?;
            Ok((file, false))
        }
        Err(error) => Err(RuntimeError::file("cannot create", path, error.error)),
    }
}

fn read_secrets(path: &Path) -> RuntimeResult<Option<SecretsFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(RuntimeError::file("cannot read", path, error)),
    };
    warn_if_readable_by_others(path);
    toml::from_str(&text)
        .map(Some)
        .map_err(|error| RuntimeError::DevCredentials {
            path: path.to_path_buf(),
            message: format!(
                "{}; delete the file to generate new development credentials",
                error.message()
            ),
        })
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "development secrets are readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

fn generate_secrets() -> SecretsFile {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut signing_secret = [0_u8; 32];
    let mut event_key = [0_u8; 32];
    rand::rng().fill_bytes(&mut signing_secret);
    rand::rng().fill_bytes(&mut event_key);
    SecretsFile {
        created_at: jsonwebtoken::get_current_timestamp(),
        signing_secret: engine.encode(signing_secret),
        intake_key: generate_api_key(),
        event_key_id: DEV_EVENT_KEY_ID.to_owned(),
        event_key: base64::engine::general_purpose::STANDARD.encode(event_key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator;
    use std::{collections::BTreeSet, sync::Arc};

    fn env_lines(path: &Path) -> Vec<(String, String)> {
        std::fs::read_to_string(path)
            .expect("env file")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (name, value) = line.split_once('=').expect("NAME=value");
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }

    #[test]
    fn first_start_creates_private_secrets_and_a_sourceable_env_file_that_authenticate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("var");
        let credentials = DevCredentials::load_or_create(&data_dir).expect("created");
        assert!(credentials.was_created());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for file in [DEV_SECRETS_FILE, DEV_CREDENTIALS_FILE] {
                let mode = std::fs::metadata(data_dir.join(file))
                    .expect("file")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{file} mode");
            }
        }

        let lines = env_lines(&credentials.env_path);
        let names: Vec<&str> = lines.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SWITCHBOARD_INTAKE_KEY",
                "SWITCHBOARD_AGENT_TOKEN",
                "SWITCHBOARD_SUPERVISOR_TOKEN",
                "SWITCHBOARD_ANALYST_TOKEN",
                "SWITCHBOARD_ADMIN_TOKEN"
            ]
        );
        for (_, value) in &lines {
            assert!(
                value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "needs no quoting"
            );
        }

        let authenticator = Authenticator::new(&credentials.auth_settings()).expect("authenticator");
        let intake = authenticator.authenticate(&lines[0].1).expect("intake key");
        assert_eq!(intake.roles, BTreeSet::from([Role::IntakeClient]));
        for ((role, _), (_, token)) in STAFF_TOKENS.iter().zip(&lines[1..]) {
            let principal = authenticator.authenticate(token).expect("staff token");
            assert_eq!(principal.roles, BTreeSet::from([*role]));
            assert_eq!(principal.subject, format!("dev-{role}"));
        }
    }

    #[test]
    fn later_starts_load_the_same_secrets_and_rewrite_a_missing_env_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = DevCredentials::load_or_create(dir.path()).expect("created");
        std::fs::remove_file(&first.env_path).expect("remove env file");
        let second = DevCredentials::load_or_create(dir.path()).expect("loaded");
        assert!(!second.was_created());
        assert_eq!(
            first.intake_key.expose_secret(),
            second.intake_key.expose_secret()
        );
        assert_eq!(
            first.event_key.key.expose_secret(),
            second.event_key.key.expose_secret()
        );
        let tokens = |credentials: &DevCredentials| -> Vec<String> {
            credentials
                .tokens
                .iter()
                .map(|(_, token)| token.expose_secret().to_owned())
                .collect()
        };
        assert_eq!(
            tokens(&first),
            tokens(&second),
            "tokens are derived, not re-minted"
        );
        assert!(second.env_path.is_file());
    }

    #[test]
    fn processes_starting_at_once_share_one_set_of_secrets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = Arc::new(dir.path().join("shared"));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let data_dir = data_dir.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let credentials = DevCredentials::load_or_create(&data_dir).expect("load or create");
                    (
                        credentials.was_created(),
                        credentials.intake_key.expose_secret().to_owned(),
                    )
                })
            })
            .collect();
        let results: Vec<(bool, String)> = handles
            .into_iter()
            .map(|handle| handle.join().expect("thread"))
            .collect();
        assert_eq!(
            results.iter().filter(|(created, _)| *created).count(),
            1,
            "exactly one creator"
        );
        assert!(
            results.iter().all(|(_, key)| *key == results[0].1),
            "everyone shares one key"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&*data_dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name != DEV_SECRETS_FILE && name != DEV_CREDENTIALS_FILE)
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
    }

    #[test]
    fn a_damaged_secrets_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(DEV_SECRETS_FILE), "created_at = \"yesterday\"").expect("write");
        let error = DevCredentials::load_or_create(dir.path()).expect_err("damaged");
        let text = error.to_string();
        assert!(
            text.contains(DEV_SECRETS_FILE) && text.contains("delete the file"),
            "{text}"
        );
    }

    #[test]
    fn development_credentials_apply_only_when_nothing_is_configured() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Defaults only, without the environment layer, so the machine's
        // SWITCHBOARD_* variables cannot change what this test sees.
        let mut settings =
            Settings::from_figment(&figment::Figment::from(crate::config::Options::defaults()))
                .expect("defaults are valid");
        settings.data_dir = dir.path().to_path_buf();
        let applied = DevCredentials::apply_if_unconfigured(&mut settings).expect("applied");
        assert!(applied.is_some());
        assert!(settings.auth.is_configured());
        assert_eq!(settings.event_keys.len(), 1);

        let before = settings.auth.api_keys.clone();
        let again = DevCredentials::apply_if_unconfigured(&mut settings).expect("not applied");
        assert!(again.is_none(), "configured settings are left alone");
        assert_eq!(settings.auth.api_keys, before);
    }
}

//! Config errors that name the file, line and column, and the field helpers both config files share.
//!
//! Every field of a raw config is a `toml::Spanned` value, so a problem found while validating is
//! reported at the place the operator has to fix, as `FILE:LINE:COLUMN: what is wrong; what to do`.

use super::keyfile::{self, KeyFileError};
use crate::crypto::keys::{KeyParseError, PresharedKey, PrivateKey};
use crate::crypto::SecretText;
use crate::iface::check_interface_name;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use zeroize::Zeroizing;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}; check the path (or pass --config FILE) and its permissions", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file has a problem at a known place.
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ConfigError {
    /// The line the error names, if it names one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::At { line, .. } => Some(*line),
        }
    }
}

/// A config file's text and path, to turn byte spans into located errors.
pub(crate) struct Source<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl<'a> Source<'a> {
    /// Reads `path`. The text may hold keys, so it is zeroized when dropped.
    pub(crate) fn read(path: &Path) -> Result<Zeroizing<String>, ConfigError> {
        std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })
    }

    /// The 1-based line of byte `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// An error at byte `span` of the text.
    pub(crate) fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = self.line_of(span.start);
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::At {
            path: self.path.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error at a spanned value.
    pub(crate) fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.error(value.span(), message)
    }

    /// Deserializes the raw config, mapping a syntax or type error to its place.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| self.error(e.span().unwrap_or(0..0), e.message()))
    }

    /// A path named in the config, relative to the config file's directory.
    pub(crate) fn resolve(&self, named: &str) -> PathBuf {
        let named = Path::new(named);
        match self.path.parent() {
            Some(dir) if named.is_relative() => dir.join(named),
            _ => named.to_owned(),
        }
    }

    fn key_file_error(&self, at: &Spanned<String>, e: KeyFileError) -> ConfigError {
        self.at(at, e.to_string())
    }

    /// A private key given inline (`NAME`) or as a file (`NAME_file`); exactly one may be set.
    pub(crate) fn private_key(
        &self,
        name: &str,
        inline: &Option<Spanned<SecretText>>,
        file: &Option<Spanned<String>>,
    ) -> Result<Option<PrivateKey>, ConfigError> {
        self.secret(
            name,
            inline,
            file,
            PrivateKey::from_base64,
            keyfile::read_private_key_file,
        )
    }

    /// A pre-shared key given inline (`NAME`) or as a file (`NAME_file`); at most one may be set.
    pub(crate) fn psk(
        &self,
        name: &str,
        inline: &Option<Spanned<SecretText>>,
        file: &Option<Spanned<String>>,
    ) -> Result<Option<PresharedKey>, ConfigError> {
        self.secret(
            name,
            inline,
            file,
            PresharedKey::from_base64,
            keyfile::read_psk_file,
        )
    }

    fn secret<K>(
        &self,
        name: &str,
        inline: &Option<Spanned<SecretText>>,
        file: &Option<Spanned<String>>,
        decode: impl Fn(&str) -> Result<K, KeyParseError>,
        read: impl Fn(&Path) -> Result<K, KeyFileError>,
    ) -> Result<Option<K>, ConfigError> {
        match (inline, file) {
            (Some(_), Some(file)) => Err(self.at(
                file,
                format!("both {name} and {name}_file are set; keep only one"),
            )),
            (Some(text), None) => decode(text.get_ref().as_str())
                .map(Some)
                .map_err(|e| self.at(text, format!("{name} {e}"))),
            (None, Some(file)) => read(&self.resolve(file.get_ref()))
                .map(Some)
                .map_err(|e| self.key_file_error(file, e)),
            (None, None) => Ok(None),
        }
    }

    /// A network interface name, checked with [`check_interface_name`].
    pub(crate) fn interface_name(
        &self,
        field: &str,
        value: &Spanned<String>,
    ) -> Result<String, ConfigError> {
        let name = value.get_ref();
        match check_interface_name(name) {
            Ok(()) => Ok(name.clone()),
            Err(e) => Err(self.at(value, format!("{field}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_become_lines_and_columns() {
        let source = Source {
            path: Path::new("/etc/jvpn/x.toml"),
            text: "a = 1\nbb = 2\n\nccc = 3",
        };
        for (offset, line, column) in [
            (0, 1, 1),
            (4, 1, 5),
            (6, 2, 1),
            (11, 2, 6),
            (13, 3, 1),
            (14, 4, 1),
            (20, 4, 7),
        ] {
            let e = source.error(offset..offset + 1, "m");
            assert!(
                matches!(e, ConfigError::At { line: l, column: c, .. } if l == line && c == column),
                "offset {offset}: {e}"
            );
        }
        assert_eq!(
            source.error(6..7, "bad").to_string(),
            "/etc/jvpn/x.toml:2:1: bad"
        );
        assert_eq!(source.resolve("k.key"), Path::new("/etc/jvpn/k.key"));
        assert_eq!(source.resolve("/k.key"), Path::new("/k.key"));
    }
}

//! The kernels a worker offers, by name.

use crate::delimited::DelimitedKernel;
use crate::Kernel;

/// Kernels by name. A worker announces [`Registry::names`] in its handshake.
#[derive(Default)]
pub struct Registry {
    kernels: Vec<Box<dyn Kernel>>,
}

impl Registry {
    /// A registry without kernels.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the built-in kernels: `"delimited"`
    /// ([`DelimitedKernel`]).
    pub fn with_builtins() -> Self {
        let mut r = Registry::new();
        r.register(Box::new(DelimitedKernel));
        r
    }

    /// Adds `kernel`. A kernel already registered under the same name is
    /// replaced and returned, so a custom build can override a built-in one.
    pub fn register(&mut self, kernel: Box<dyn Kernel>) -> Option<Box<dyn Kernel>> {
        match self.kernels.iter().position(|k| k.name() == kernel.name()) {
            Some(i) => Some(std::mem::replace(&mut self.kernels[i], kernel)),
            None => {
                self.kernels.push(kernel);
                None
            }
        }
    }

    /// The kernel called `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Kernel> {
        self.kernels
            .iter()
            .find(|k| k.name() == name)
            .map(|k| k.as_ref())
    }

    /// The kernel names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.kernels.iter().map(|k| k.name().to_string()).collect()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kernels", &self.names())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PreparedQuery, TaskFailure};
    use tally_protocol::{ErrorKind, QuerySpec};

    struct Named(&'static str);
    impl Kernel for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn prepare(&self, _: &QuerySpec) -> Result<Box<dyn PreparedQuery>, TaskFailure> {
            Err(TaskFailure::new(ErrorKind::Query, "no"))
        }
    }

    #[test]
    fn register_adds_and_replaces() {
        let mut r = Registry::with_builtins();
        assert_eq!(r.names(), ["delimited"]);
        assert!(r.register(Box::new(Named("x"))).is_none());
        assert_eq!(r.names(), ["delimited", "x"]);
        let old = r.register(Box::new(Named("delimited")));
        assert_eq!(
            old.map(|k| k.name().to_string()).as_deref(),
            Some("delimited")
        );
        assert_eq!(r.names(), ["delimited", "x"]);
        assert!(r.get("x").is_some());
        assert!(r.get("y").is_none());
    }
}

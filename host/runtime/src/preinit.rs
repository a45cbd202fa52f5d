//! Pre-initialisation: run a plugin's `cauldron_init` once per load with its content tables, then
//! snapshot the instance into a new module (wasmtime-wizer's instrument and snapshot passes).
//!
//! Every call then instantiates the snapshot: its linear memory starts as a copy-on-write image of
//! the initialised heap, so the tables are already decoded and a call carries only the player's
//! state. Isolation is unchanged: each call still gets a fresh instance, and nothing a call writes
//! reaches the next one.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use cauldron_sdk::abi;
use cauldron_sdk::codec;
use cauldron_sdk::wire::Outcome;
use wasmtime::{Instance, Store};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use crate::PluginError;
use crate::engine::{CallState, Runtime, classify, read_output, write_input};

/// Whether the module exports `cauldron_init`: a cheap scan of its export section, so modules
/// without it are never instrumented.
pub(crate) fn exports_init(wasm: &[u8]) -> bool {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(wasmparser::Payload::ExportSection(exports)) => {
                return exports
                    .into_iter()
                    .any(|e| e.is_ok_and(|e| e.name == abi::EXPORT_INIT));
            }
            Ok(_) => {}
            // Compiling reports malformed modules with a better message.
            Err(_) => return false,
        }
    }
    false
}

fn wizer() -> Wizer {
    let mut w = Wizer::new();
    w.init_func(abi::EXPORT_INIT);
    w
}

/// Run `cauldron_init` with `init` (an encoded [`cauldron_sdk::wire::Init`]) and return the
/// snapshot module's bytes.
pub(crate) fn preinitialise(
    rt: &Runtime,
    plugin: &str,
    wasm: &[u8],
    init: &[u8],
) -> Result<Vec<u8>, PluginError> {
    let wizer = wizer();
    let cannot = |e: &dyn std::fmt::Display| PluginError::Compile(format!("cannot pre-initialise: {e}"));
    // Wizer validates the module first; a panic on input it did not foresee is still only a refusal.
    let (cx, instrumented) = std::panic::catch_unwind(AssertUnwindSafe(|| wizer.instrument(wasm)))
        .map_err(|_| cannot(&"the instrumentation pass failed"))?
        .map_err(|e| cannot(&format_args!("{e:#}")))?;

    let sha = crate::sha256_hex(&instrumented);
    let module = rt
        .inner
        .cache
        .get_or_compile_transient(&rt.inner.engine, &sha, &instrumented)?;
    // The instrumented module has every original export: ABI problems surface here, as usual.
    let (_, pre) = rt.link(&module)?;

    if init.len() > abi::MAX_CALL_BYTES {
        return Err(PluginError::BadContent(format!(
            "the content tables encode to {} bytes, over the {}-byte call cap",
            init.len(),
            abi::MAX_CALL_BYTES
        )));
    }

    let mut store = rt.new_store(Arc::from(plugin))?;
    let max_out = rt.inner.limits.max_output_bytes;
    let ran = (|| -> Result<(Instance, Vec<u8>), wasmtime::Error> {
        let instance = pre.instantiate(&mut store)?;
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| wasmtime::format_err!("memory export vanished"))?;
        let alloc = instance.get_typed_func::<u32, u32>(&mut store, abi::EXPORT_ALLOC)?;
        let free = instance.get_typed_func::<(u32, u32), ()>(&mut store, abi::EXPORT_FREE)?;
        let entry = instance
            .get_typed_func::<(u32, u32), u64>(&mut store, abi::EXPORT_INIT)
            .map_err(|e| {
                wasmtime::Error::new(crate::engine::BadOutputMarker(format!(
                    "`{}` must be (i32, i32) -> i64: {e}",
                    abi::EXPORT_INIT
                )))
            })?;
        let len = u32::try_from(init.len()).map_err(|_| wasmtime::format_err!("init too large"))?;
        let ptr = alloc.call(&mut store, len)?;
        write_input(&mut store, memory, ptr, init)?;
        let packed = entry.call(&mut store, (ptr, len))?;
        let out = read_output(&store, memory, packed, max_out)?.to_vec();
        // Hand the output back so the snapshot's heap holds no garbage allocation.
        let (ptr, len) = abi::unpack(packed);
        if ptr != 0 {
            free.call(&mut store, (ptr, len))?;
        }
        Ok((instance, out))
    })();
    let ran = ran.map_err(|e| classify(e, store.data()));
    crate::engine::take_logs(store.data_mut()).emit();
    let (instance, out) = ran?;

    match codec::decode::<Outcome>(&out) {
        Ok(Outcome::Ok { .. }) => {}
        Ok(Outcome::Fault { code, message } | Outcome::Rejected { code, message }) => {
            return Err(PluginError::BadContent(format!("{message} ({code})")));
        }
        Err(e) => {
            return Err(PluginError::BadOutput(format!(
                "`{}` answer does not decode: {e}",
                abi::EXPORT_INIT
            )));
        }
    }

    let mut state = Snapshotted {
        store: &mut store,
        instance,
    };
    // Wizer checks its own output with assertions in debug builds; like the instrumentation pass
    // above, a panic there refuses this plugin and nothing else.
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let snapshot = wizer.snapshot(&cx, &mut state);
        pin!(snapshot).poll(&mut Context::from_waker(Waker::noop()))
    }))
    .map_err(|_| cannot(&"the snapshot pass failed"))?;
    match polled {
        Poll::Ready(Ok(bytes)) => Ok(bytes),
        Poll::Ready(Err(e)) => Err(cannot(&format_args!("{e:#}"))),
        // Every future below is ready at once; a pending one would be a wizer change to look at.
        Poll::Pending => Err(cannot(&"the snapshot did not complete synchronously")),
    }
}

/// The instrumented instance after init, read by wizer's snapshot pass.
struct Snapshotted<'a> {
    store: &'a mut Store<CallState>,
    instance: Instance,
}

impl InstanceState for Snapshotted<'_> {
    #[allow(
        clippy::manual_async_fn,
        reason = "the trait asks for `impl Future + Send`; an async block borrowing self is the plain way"
    )]
    fn global_get(&mut self, name: &str, _type_hint: ValType) -> impl Future<Output = SnapshotVal> + Send {
        let value = self
            .instance
            .get_global(&mut *self.store, name)
            .map(|g| g.get(&mut *self.store));
        async move {
            // Wizer asks only for the globals its instrumentation exported, with numeric types.
            match value {
                Some(wasmtime::Val::I32(x)) => SnapshotVal::I32(x),
                Some(wasmtime::Val::I64(x)) => SnapshotVal::I64(x),
                Some(wasmtime::Val::F32(x)) => SnapshotVal::F32(x),
                Some(wasmtime::Val::F64(x)) => SnapshotVal::F64(x),
                Some(wasmtime::Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
                _ => SnapshotVal::I32(0),
            }
        }
    }

    #[allow(
        clippy::manual_async_fn,
        reason = "the trait asks for `impl Future + Send`; an async block borrowing self is the plain way"
    )]
    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        let memory = self.instance.get_memory(&mut *self.store, name);
        let data: &[u8] = match memory {
            Some(m) => m.data(&*self.store),
            None => &[],
        };
        contents(data);
        async {}
    }
}

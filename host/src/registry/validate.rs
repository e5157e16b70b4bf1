//! First look at uploaded bytes, before anything is compiled: size cap, WebAssembly header,
//! component (not core module, not a precompiled artifact).

use super::RegistryError;

/// `\0asm` magic.
const MAGIC: &[u8; 4] = b"\0asm";
/// Version and layer of a core module (version 1, layer 0).
const CORE_MODULE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Version and layer of a component (version 0xd, layer 1).
const COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Checks the bytes look like a component within `cap` bytes.
pub(super) fn check_bytes(bytes: &[u8], cap: usize) -> Result<(), RegistryError> {
    if bytes.len() > cap {
        return Err(RegistryError::TooLarge { size: bytes.len(), cap });
    }
    let not = |why: &str| Err(RegistryError::NotAComponent(why.to_string()));
    if bytes.starts_with(b"\x7fELF") {
        return not(
            "a precompiled artifact (.cwasm) is not accepted: upload the .wasm component and the host compiles it",
        );
    }
    if bytes.len() < 8 || !bytes.starts_with(MAGIC) {
        return not("the bytes are not WebAssembly (no `\\0asm` header)");
    }
    match <[u8; 4]>::try_from(&bytes[4..8]).unwrap_or_default() {
        COMPONENT => Ok(()),
        CORE_MODULE => {
            not("this is a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 with cairn-sdk")
        }
        _ => not("unknown WebAssembly version or layer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(bytes: &[u8]) -> String {
        match check_bytes(bytes, 1024) {
            Err(RegistryError::NotAComponent(reason)) => reason,
            other => panic!("expected NotAComponent, got {other:?}"),
        }
    }

    #[test]
    fn each_kind_of_bad_bytes_gets_its_own_reason() {
        assert!(reason(b"\0asm\x01\0\0\0").contains("core WebAssembly module"));
        assert!(reason(b"\x7fELF\x02\x01\x01").contains("precompiled"));
        assert!(reason(b"hello world").contains("not WebAssembly"));
        assert!(reason(b"\0asm").contains("not WebAssembly"));
        assert!(check_bytes(b"\0asm\x0d\0\x01\0", 1024).is_ok());
        assert!(matches!(check_bytes(&[0; 2048], 1024), Err(RegistryError::TooLarge { size: 2048, cap: 1024 })));
    }
}

//! The loader's reading of a library's bytes, on any bytes: `check_library` (header, class, byte
//! order, type, header tables and loadable segments inside the file) and the relocation walker
//! that finds the slots hotmod redirects (program headers, dynamic section, symbol and string
//! tables, `RELA` and `JMPREL` tables). Neither may panic or read outside `bytes` (the build is
//! instrumented with AddressSanitizer); everything they return must be consistent.
//!
//! Seeds: `fuzz/seeds/elf_reader/` (tiny shared objects built from `fuzz/seeds/elf_seed.c`).
#![no_main]

use hotmod::__fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let checked = __fuzz::check_library(bytes);
    if let Err(reason) = &checked {
        assert!(!reason.is_empty());
    }
    let names = __fuzz::redirected();
    match __fuzz::relocations(bytes, &names) {
        Ok(slots) => {
            for slot in &slots {
                assert!(slot.symbol < names.len(), "{slot:?}");
            }
        }
        Err(reason) => {
            assert!(!reason.is_empty());
            // What the loader accepts, the reader's header pass accepts too (its refusals are
            // about the ELF header and the program headers; the walker's about the rest).
            assert!(
                checked.is_err() || !(reason.contains("ELF") || reason.contains("program headers")),
                "check_library accepted what the reader refuses: {reason}"
            );
        }
    }
});

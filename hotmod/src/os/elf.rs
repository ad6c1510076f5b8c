//! Reading the few parts of an ELF shared object that hotmod needs, from the file's bytes:
//! the loadable segments, the RELRO range, and the dynamic relocations that name a symbol.
//!
//! Everything is read from the bytes hotmod copied and handed to `dlopen`, never from the mapped
//! image: glibc rewrites parts of the mapped dynamic section in place (on some architectures
//! and not others), while the file's view is fixed. Every read is bounds-checked; a malformed
//! file yields an `Err` naming what is wrong, never a panic.
//!
//! Only 64-bit ELF of the host's byte order is read (the loader refuses anything else first).

/// `PT_LOAD`: a segment mapped from the file.
const PT_LOAD: u32 = 1;
/// `PT_DYNAMIC`: the dynamic section.
const PT_DYNAMIC: u32 = 2;
/// `PT_GNU_RELRO`: made read-only by the dynamic loader after relocation.
const PT_GNU_RELRO: u32 = 0x6474_e552;
/// Segment flag: writable.
pub(crate) const PF_W: u32 = 2;

const DT_NULL: u64 = 0;
const DT_PLTRELSZ: u64 = 2;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_RELAENT: u64 = 9;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_REL: u64 = 17;
const DT_PLTREL: u64 = 20;
const DT_JMPREL: u64 = 23;

const PHDR_SIZE: u64 = 56;
const DYN_SIZE: u64 = 16;
const RELA_SIZE: u64 = 24;
const SYM_SIZE: u64 = 24;

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Where the segment starts, relative to the load base.
    pub(crate) vaddr: u64,
    /// Its size in memory.
    pub(crate) memsz: u64,
    /// Where its bytes start in the file.
    pub(crate) offset: u64,
    /// How many bytes come from the file.
    pub(crate) filesz: u64,
    /// `PF_R | PF_W | PF_X`.
    pub(crate) flags: u32,
}

/// The program-header view of a shared object.
#[derive(Debug)]
pub(crate) struct Image {
    /// Every `PT_LOAD`, in file order.
    pub(crate) loads: Vec<Segment>,
    /// `PT_GNU_RELRO` as (vaddr, memsz), if present.
    pub(crate) relro: Option<(u64, u64)>,
    /// `PT_DYNAMIC` as (vaddr, file offset, file size), if present.
    pub(crate) dynamic: Option<(u64, u64, u64)>,
}

/// How a relocation fills its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotKind {
    /// A GOT entry holding the symbol's address (`R_*_GLOB_DAT`).
    GlobDat,
    /// A PLT GOT entry (`R_*_JUMP_SLOT`); with lazy binding it holds a stub until first call.
    JumpSlot,
    /// A data word holding the symbol's address plus an addend (`R_X86_64_64`, `R_AARCH64_ABS64`).
    Absolute,
    /// Any other relocation type: the symbol is used in a way hotmod does not rewrite.
    Other(u32),
}

/// A dynamic relocation against one of the symbols asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SymbolSlot<S> {
    /// The symbol, as the caller of [`Image::symbol_slots`] named it.
    pub(crate) symbol: S,
    /// The slot's address relative to the load base (`r_offset`).
    pub(crate) offset: u64,
    /// How the slot is filled.
    pub(crate) kind: SlotKind,
    /// `r_addend`.
    pub(crate) addend: i64,
}

fn read<const N: usize>(bytes: &[u8], at: u64) -> Option<[u8; N]> {
    let start = usize::try_from(at).ok()?;
    let end = start.checked_add(N)?;
    bytes.get(start..end)?.try_into().ok()
}

fn u16_at(bytes: &[u8], at: u64) -> Option<u16> {
    read(bytes, at).map(u16::from_ne_bytes)
}

fn u32_at(bytes: &[u8], at: u64) -> Option<u32> {
    read(bytes, at).map(u32::from_ne_bytes)
}

fn u64_at(bytes: &[u8], at: u64) -> Option<u64> {
    read(bytes, at).map(u64::from_ne_bytes)
}

impl Image {
    /// Reads the program headers of a 64-bit ELF file of the host's byte order.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Image, String> {
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return Err("it does not start with an ELF header".into());
        }
        if bytes[4] != 2 {
            return Err("it is not a 64-bit ELF file".into());
        }
        let truncated = || "its program headers lie outside the file".to_string();
        let phoff = u64_at(bytes, 32).ok_or_else(truncated)?;
        let phentsize = u16_at(bytes, 54).ok_or_else(truncated)?;
        let phnum = u16_at(bytes, 56).ok_or_else(truncated)?;
        if u64::from(phentsize) < PHDR_SIZE && phnum > 0 {
            return Err(format!("its program headers are {phentsize} bytes long"));
        }
        let mut image = Image {
            loads: Vec::new(),
            relro: None,
            dynamic: None,
        };
        for i in 0..u64::from(phnum) {
            let at = i
                .checked_mul(u64::from(phentsize))
                .and_then(|n| n.checked_add(phoff))
                .ok_or_else(truncated)?;
            let field =
                |offset: u64| u64_at(bytes, at.saturating_add(offset)).ok_or_else(truncated);
            let p_type = u32_at(bytes, at).ok_or_else(truncated)?;
            let flags = u32_at(bytes, at.saturating_add(4)).ok_or_else(truncated)?;
            let (offset, vaddr, filesz, memsz) = (field(8)?, field(16)?, field(32)?, field(40)?);
            match p_type {
                PT_LOAD => image.loads.push(Segment {
                    vaddr,
                    memsz,
                    offset,
                    filesz,
                    flags,
                }),
                PT_DYNAMIC => image.dynamic = Some((vaddr, offset, filesz)),
                PT_GNU_RELRO => image.relro = Some((vaddr, memsz)),
                _ => {}
            }
        }
        Ok(image)
    }

    /// Checks that every loadable segment's file bytes lie inside the file: a library cut short
    /// after its headers would otherwise be mapped past the end of the file, and touching those
    /// pages raises `SIGBUS`.
    pub(crate) fn check_segments(&self, file_len: u64) -> Result<(), String> {
        for segment in &self.loads {
            let end = segment.offset.checked_add(segment.filesz);
            if end.is_none_or(|end| end > file_len) {
                return Err(format!(
                    "it is truncated ({file_len} bytes, a loadable segment reaches {})",
                    end.map_or_else(|| "past 2^64".into(), |e| e.to_string())
                ));
            }
        }
        Ok(())
    }

    /// The address range the loadable segments span, relative to the load base.
    pub(crate) fn span(&self) -> Option<(u64, u64)> {
        let start = self.loads.iter().map(|s| s.vaddr).min()?;
        let end = self
            .loads
            .iter()
            .map(|s| s.vaddr.saturating_add(s.memsz))
            .max()?;
        Some((start, end))
    }

    /// The loadable segment that contains the `len` bytes at `vaddr` in memory.
    pub(crate) fn segment_at(&self, vaddr: u64, len: u64) -> Option<&Segment> {
        self.loads.iter().find(|s| {
            vaddr >= s.vaddr
                && vaddr
                    .checked_add(len)
                    .is_some_and(|end| end <= s.vaddr.saturating_add(s.memsz))
        })
    }

    /// The file offset of the `len` bytes at `vaddr` (they must come from the file).
    fn file_offset(&self, vaddr: u64, len: u64) -> Option<u64> {
        let segment = self.loads.iter().find(|s| {
            vaddr >= s.vaddr
                && vaddr
                    .checked_add(len)
                    .is_some_and(|end| end <= s.vaddr.saturating_add(s.filesz))
        })?;
        segment.offset.checked_add(vaddr - segment.vaddr)
    }

    /// Every dynamic relocation (`DT_RELA` and `DT_JMPREL`) whose symbol is named in `symbols`,
    /// a list of `(symbol, name)` pairs: each slot carries the `symbol` of its name.
    ///
    /// `relocation_kind` maps the architecture's relocation types to [`SlotKind`]s.
    pub(crate) fn symbol_slots<S: Copy>(
        &self,
        bytes: &[u8],
        symbols: &[(S, &[u8])],
        relocation_kind: fn(u32) -> SlotKind,
    ) -> Result<Vec<SymbolSlot<S>>, String> {
        let Some((_, dyn_offset, dyn_size)) = self.dynamic else {
            return Err("it has no dynamic section".into());
        };
        let bad = |what: &str| format!("its dynamic section is malformed ({what})");
        let mut tags = std::collections::HashMap::new();
        let mut at = dyn_offset;
        let end = dyn_offset
            .checked_add(dyn_size)
            .ok_or_else(|| bad("size"))?;
        while at.checked_add(DYN_SIZE).is_some_and(|next| next <= end) {
            let tag = u64_at(bytes, at).ok_or_else(|| bad("entry outside the file"))?;
            let value = u64_at(bytes, at + 8).ok_or_else(|| bad("entry outside the file"))?;
            if tag == DT_NULL {
                break;
            }
            // The first occurrence counts, as for the dynamic loader.
            tags.entry(tag).or_insert(value);
            at += DYN_SIZE;
        }
        if tags.contains_key(&DT_REL) {
            return Err("it uses REL relocations, which hotmod does not read".into());
        }
        if tags.get(&DT_PLTREL).is_some_and(|kind| *kind != DT_RELA) {
            return Err("its PLT uses REL relocations, which hotmod does not read".into());
        }
        let (Some(&symtab), Some(&strtab), Some(&strsz)) = (
            tags.get(&DT_SYMTAB),
            tags.get(&DT_STRTAB),
            tags.get(&DT_STRSZ),
        ) else {
            return Err(bad("no symbol or string table"));
        };
        let syment = tags.get(&DT_SYMENT).copied().unwrap_or(SYM_SIZE);
        let relaent = tags.get(&DT_RELAENT).copied().unwrap_or(RELA_SIZE);
        if syment < SYM_SIZE || relaent < RELA_SIZE {
            return Err(bad("entry sizes"));
        }
        let strtab = self
            .file_offset(strtab, strsz)
            .ok_or_else(|| bad("string table outside the file"))?;
        let strings = usize::try_from(strtab)
            .ok()
            .zip(usize::try_from(strsz).ok())
            .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?))
            .ok_or_else(|| bad("string table outside the file"))?;

        let name_of = |index: u64| -> Result<&[u8], String> {
            let entry = index
                .checked_mul(syment)
                .and_then(|n| n.checked_add(symtab))
                .and_then(|vaddr| self.file_offset(vaddr, SYM_SIZE))
                .ok_or_else(|| bad("symbol outside the file"))?;
            let name = u32_at(bytes, entry).ok_or_else(|| bad("symbol outside the file"))?;
            let tail = strings
                .get(name as usize..)
                .ok_or_else(|| bad("symbol name outside the string table"))?;
            let len = tail
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| bad("unterminated symbol name"))?;
            Ok(&tail[..len])
        };

        let mut slots = Vec::new();
        let tables = [(DT_RELA, DT_RELASZ), (DT_JMPREL, DT_PLTRELSZ)];
        for (start_tag, size_tag) in tables {
            let (Some(&start), Some(&size)) = (tags.get(&start_tag), tags.get(&size_tag)) else {
                continue;
            };
            if size == 0 {
                continue;
            }
            let table = self
                .file_offset(start, size)
                .and_then(|at| usize::try_from(at).ok())
                .zip(usize::try_from(size).ok())
                .and_then(|(at, len)| bytes.get(at..at.checked_add(len)?))
                .ok_or_else(|| bad("relocation table outside the file"))?;
            let word = |entry: &[u8], at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&entry[at..at + 8]);
                u64::from_ne_bytes(b)
            };
            // `relaent` >= RELA_SIZE was checked above, so every chunk holds a whole entry.
            for entry in table.chunks_exact(relaent as usize) {
                let info = word(entry, 8);
                let symbol_index = info >> 32;
                if symbol_index == 0 {
                    // Relative relocations, the great majority: no symbol.
                    continue;
                }
                let name = name_of(symbol_index)?;
                if let Some(&(symbol, _)) = symbols.iter().find(|(_, n)| *n == name) {
                    slots.push(SymbolSlot {
                        symbol,
                        offset: word(entry, 0),
                        kind: relocation_kind(info as u32),
                        addend: word(entry, 16) as i64,
                    });
                }
            }
        }
        Ok(slots)
    }
}

/// The relocation types of the host architecture that store a symbol's address in a word.
pub(crate) fn host_relocation_kind(kind: u32) -> SlotKind {
    #[cfg(target_arch = "x86_64")]
    match kind {
        1 => SlotKind::Absolute, // R_X86_64_64
        6 => SlotKind::GlobDat,  // R_X86_64_GLOB_DAT
        7 => SlotKind::JumpSlot, // R_X86_64_JUMP_SLOT
        other => SlotKind::Other(other),
    }
    #[cfg(target_arch = "aarch64")]
    match kind {
        257 => SlotKind::Absolute,  // R_AARCH64_ABS64
        1025 => SlotKind::GlobDat,  // R_AARCH64_GLOB_DAT
        1026 => SlotKind::JumpSlot, // R_AARCH64_JUMP_SLOT
        other => SlotKind::Other(other),
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    SlotKind::Other(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself is a 64-bit ELF (a PIE, so `ET_DYN` like a library) that imports
    /// libc functions: enough to exercise every path of the reader on real bytes.
    fn own_bytes() -> Vec<u8> {
        std::fs::read(std::env::current_exe().expect("current_exe")).expect("read own binary")
    }

    #[test]
    fn reads_segments_and_relocations_of_a_real_binary() {
        let bytes = own_bytes();
        let image = Image::parse(&bytes).expect("parse");
        assert!(!image.loads.is_empty());
        assert!(image.dynamic.is_some());
        image.check_segments(bytes.len() as u64).expect("segments");
        let (start, end) = image.span().expect("span");
        assert!(start < end);
        // Every Rust program on Linux links `malloc`; it must be found as a relocation.
        let symbols: [(_, &[u8]); 2] = [("malloc", b"malloc"), ("none", b"no-such-symbol")];
        let slots = image
            .symbol_slots(&bytes, &symbols, host_relocation_kind)
            .expect("relocations");
        assert!(slots.iter().any(|s| s.symbol == "malloc"), "{slots:?}");
        assert!(slots.iter().all(|s| s.symbol == "malloc"));
        for slot in slots {
            assert!(image.segment_at(slot.offset, 8).is_some(), "{slot:?}");
        }
    }

    const MALLOC: &[((), &[u8])] = &[((), b"malloc")];

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let bytes = own_bytes();
        assert!(Image::parse(b"").is_err());
        assert!(Image::parse(&[0u8; 100]).is_err());
        // Every prefix, and the file with its tail replaced by garbage: never a panic.
        for cut in [64, 65, 200, 1000, 4096, bytes.len() / 2] {
            let short = &bytes[..cut.min(bytes.len())];
            if let Ok(image) = Image::parse(short) {
                let _ = image.check_segments(short.len() as u64);
                let _ = image.symbol_slots(short, MALLOC, host_relocation_kind);
            }
        }
        let mut scrambled = bytes.clone();
        for (i, b) in scrambled.iter_mut().enumerate().skip(64) {
            *b = (i as u8).wrapping_mul(31);
        }
        if let Ok(image) = Image::parse(&scrambled) {
            let _ = image.symbol_slots(&scrambled, MALLOC, host_relocation_kind);
        }
    }

    #[test]
    fn header_offsets_at_the_end_of_the_address_space_are_errors() {
        let mut bytes = own_bytes();
        bytes[32..40].copy_from_slice(&u64::MAX.to_ne_bytes()); // e_phoff
        assert!(Image::parse(&bytes).is_err());
        assert!(super::super::check_library(&bytes).is_err());
        let mut bytes = own_bytes();
        bytes[40..48].copy_from_slice(&(u64::MAX - 8).to_ne_bytes()); // e_shoff
        assert!(super::super::check_library(&bytes).is_err());
    }

    #[test]
    fn a_cut_library_fails_the_segment_check() {
        let bytes = own_bytes();
        let image = Image::parse(&bytes).expect("parse");
        let last = image
            .loads
            .iter()
            .map(|s| s.offset + s.filesz)
            .max()
            .expect("a segment");
        let error = image.check_segments(last - 1).expect_err("cut");
        assert!(error.contains("truncated"), "{error}");
    }
}

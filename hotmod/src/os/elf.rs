//! Reading the few parts of an ELF shared object that hotmod needs, from the file's bytes:
//! the file header ([`ElfHeader`], the one place that parses it), the loadable segments, the
//! RELRO range, and the dynamic relocations that name a symbol.
//!
//! Everything is read from the bytes hotmod copied and handed to `dlopen`, never from the mapped
//! image: glibc rewrites parts of the mapped dynamic section in place (on some architectures
//! and not others), while the file's view is fixed. Every read is bounds-checked; a malformed
//! file yields an [`ElfError`] naming what is wrong, never a panic.
//!
//! Only 64-bit ELF of the host's byte order is read past its file header.

/// The size of the 64-bit file header (`Elf64_Ehdr`); no ELF file is shorter.
const EHDR_SIZE: usize = 64;
/// `e_ident[EI_CLASS]` of a 64-bit file.
const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]` of a little-endian file.
const ELFDATA2LSB: u8 = 1;
/// `e_type` of a shared object.
const ET_DYN: u16 = 3;

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

/// Why hotmod refuses or cannot read an ELF file. Each reads as a clause about the file: the
/// loader shows it after "it is not a shared library", the thread-exit redirection after "hotmod
/// could not redirect its thread-exit callbacks".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ElfError {
    /// Shorter than a file header, or without the `\x7fELF` magic.
    #[error("it does not start with an ELF header")]
    NotElf,
    /// `e_ident[EI_CLASS]` is not the host's.
    #[error("it is an ELF file for another word size")]
    OtherWordSize,
    /// `e_ident[EI_DATA]` is not the host's.
    #[error("it is an ELF file for another byte order")]
    OtherByteOrder,
    /// `e_type` is not `ET_DYN`.
    #[error("it is an ELF file but not a shared library (build the crate as a cdylib)")]
    NotShared,
    /// A 32-bit file (on a 32-bit host): hotmod reads no further than its file header.
    #[error("it is not a 64-bit ELF file")]
    Not64Bit,
    /// The program or section header table reaches past the end of the file.
    #[error("it is truncated ({len} bytes, its headers reach {end})")]
    HeadersPastEnd {
        /// The file's length.
        len: u64,
        /// Where the farther table ends.
        end: u64,
    },
    /// A loadable segment's file bytes reach past the end of the file.
    #[error(
        "it is truncated ({len} bytes, a loadable segment reaches {})",
        end.map_or_else(|| "past 2^64".into(), |end| end.to_string())
    )]
    SegmentPastEnd {
        /// The file's length.
        len: u64,
        /// Where the segment's file bytes end (`None`: past 2^64).
        end: Option<u64>,
    },
    /// `e_phentsize` is less than a 64-bit program header.
    #[error("its program headers are {0} bytes long")]
    ProgramHeaderSize(u16),
    /// A program header lies outside the file.
    #[error("its program headers lie outside the file")]
    ProgramHeadersOutside,
    /// No `PT_DYNAMIC`.
    #[error("it has no dynamic section")]
    NoDynamicSection,
    /// `DT_REL` relocations.
    #[error("it uses REL relocations, which hotmod does not read")]
    RelRelocations,
    /// `DT_PLTREL` other than `DT_RELA`.
    #[error("its PLT uses REL relocations, which hotmod does not read")]
    PltRelRelocations,
    /// The dynamic section, or a table it points to, says what cannot be (what, in brackets).
    #[error("its dynamic section is malformed ({0})")]
    MalformedDynamic(&'static str),
}

/// The ELF file header, as far as hotmod reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElfHeader {
    /// `e_type`.
    pub(crate) kind: u16,
    /// The header tables; `None` for a 32-bit file (which only a 32-bit host accepts): hotmod
    /// reads no further than the file header of those.
    pub(crate) tables: Option<HeaderTables>,
}

/// Where a 64-bit file's header tables are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderTables {
    /// `e_phoff`, `e_phentsize`, `e_phnum`.
    pub(crate) program: Table,
    /// `e_shoff`, `e_shentsize`, `e_shnum`.
    pub(crate) section: Table,
}

/// A table of equal-sized entries in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    /// Where it starts in the file.
    pub(crate) offset: u64,
    /// The size of one entry.
    pub(crate) entry_size: u16,
    /// How many entries.
    pub(crate) count: u16,
}

impl Table {
    /// Where the table ends in the file (`u64::MAX` if past 2^64).
    fn end(&self) -> u64 {
        let size = u64::from(self.entry_size) * u64::from(self.count);
        self.offset.saturating_add(size)
    }
}

impl ElfHeader {
    /// Reads the file header of an ELF file for this machine: its word size and byte order must
    /// be the host's (every later field is read in the host's byte order).
    pub(crate) fn parse(bytes: &[u8]) -> Result<ElfHeader, ElfError> {
        let header: &[u8; EHDR_SIZE] = bytes
            .get(..EHDR_SIZE)
            .and_then(|header| header.try_into().ok())
            .ok_or(ElfError::NotElf)?;
        if &header[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let class64 = header[4] == ELFCLASS64;
        if class64 != cfg!(target_pointer_width = "64") {
            return Err(ElfError::OtherWordSize);
        }
        if (header[5] == ELFDATA2LSB) != cfg!(target_endian = "little") {
            return Err(ElfError::OtherByteOrder);
        }
        /// The `N` bytes at `at`, which the caller keeps within the header.
        fn field<const N: usize>(header: &[u8; EHDR_SIZE], at: usize) -> [u8; N] {
            std::array::from_fn(|i| header[at + i])
        }
        let u16_at = |at: usize| u16::from_ne_bytes(field(header, at));
        let table = |offset: usize, entry_size: usize| Table {
            offset: u64::from_ne_bytes(field(header, offset)),
            entry_size: u16_at(entry_size),
            count: u16_at(entry_size + 2),
        };
        Ok(ElfHeader {
            kind: u16_at(16),
            tables: class64.then(|| HeaderTables {
                program: table(32, 54),
                section: table(40, 58),
            }),
        })
    }
}

/// Checks that `bytes` are a whole ELF shared object for this machine: its file header (magic,
/// word size, byte order, type), then, for a 64-bit file, that the program and section header
/// tables and every loadable segment's bytes lie inside the file (a truncated or half-written
/// library fails those).
pub(crate) fn check_shared_object(bytes: &[u8]) -> Result<(), ElfError> {
    let header = ElfHeader::parse(bytes)?;
    if header.kind != ET_DYN {
        return Err(ElfError::NotShared);
    }
    let Some(tables) = header.tables else {
        return Ok(());
    };
    let len = bytes.len() as u64;
    let end = tables.program.end().max(tables.section.end());
    if end > len {
        return Err(ElfError::HeadersPastEnd { len, end });
    }
    Image::read(bytes, &header)?.check_segments(len)
}

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
    /// `p_align`.
    pub(crate) align: u64,
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

fn u32_at(bytes: &[u8], at: u64) -> Option<u32> {
    read(bytes, at).map(u32::from_ne_bytes)
}

fn u64_at(bytes: &[u8], at: u64) -> Option<u64> {
    read(bytes, at).map(u64::from_ne_bytes)
}

impl Image {
    /// Reads the program headers of a 64-bit ELF file of the host's byte order.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Image, ElfError> {
        Image::read(bytes, &ElfHeader::parse(bytes)?)
    }

    /// Reads the program headers `header` (the header of `bytes`) points to.
    fn read(bytes: &[u8], header: &ElfHeader) -> Result<Image, ElfError> {
        let program = header.tables.ok_or(ElfError::Not64Bit)?.program;
        if u64::from(program.entry_size) < PHDR_SIZE && program.count > 0 {
            return Err(ElfError::ProgramHeaderSize(program.entry_size));
        }
        let truncated = || ElfError::ProgramHeadersOutside;
        let mut image = Image {
            loads: Vec::new(),
            relro: None,
            dynamic: None,
        };
        for i in 0..u64::from(program.count) {
            let at = i
                .checked_mul(u64::from(program.entry_size))
                .and_then(|n| n.checked_add(program.offset))
                .ok_or_else(truncated)?;
            let field =
                |offset: u64| u64_at(bytes, at.saturating_add(offset)).ok_or_else(truncated);
            let p_type = u32_at(bytes, at).ok_or_else(truncated)?;
            let flags = u32_at(bytes, at.saturating_add(4)).ok_or_else(truncated)?;
            let (offset, vaddr, filesz, memsz) = (field(8)?, field(16)?, field(32)?, field(40)?);
            let align = field(48)?;
            match p_type {
                PT_LOAD => image.loads.push(Segment {
                    vaddr,
                    memsz,
                    offset,
                    filesz,
                    flags,
                    align,
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
    pub(crate) fn check_segments(&self, file_len: u64) -> Result<(), ElfError> {
        for segment in &self.loads {
            let end = segment.offset.checked_add(segment.filesz);
            if end.is_none_or(|end| end > file_len) {
                return Err(ElfError::SegmentPastEnd { len: file_len, end });
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
    ) -> Result<Vec<SymbolSlot<S>>, ElfError> {
        let Some((_, dyn_offset, dyn_size)) = self.dynamic else {
            return Err(ElfError::NoDynamicSection);
        };
        let bad = ElfError::MalformedDynamic;
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
            return Err(ElfError::RelRelocations);
        }
        if tags.get(&DT_PLTREL).is_some_and(|kind| *kind != DT_RELA) {
            return Err(ElfError::PltRelRelocations);
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

        let name_of = |index: u64| -> Result<&[u8], ElfError> {
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
        assert_eq!(
            error,
            ElfError::SegmentPastEnd {
                len: last - 1,
                end: Some(last)
            }
        );
        assert!(error.to_string().contains("truncated"), "{error}");
    }

    #[test]
    fn the_header_is_read_once_and_checked_against_the_host() {
        let bytes = own_bytes();
        let header = ElfHeader::parse(&bytes).expect("header");
        assert_eq!(header.kind, ET_DYN);
        let tables = header.tables.expect("a 64-bit file");
        assert!(tables.program.count > 0 && u64::from(tables.program.entry_size) >= PHDR_SIZE);
        assert!(tables.program.end() <= bytes.len() as u64);
        check_shared_object(&bytes).expect("a shared object");

        let with = |at: usize, value: u8| {
            let mut bytes = bytes.clone();
            bytes[at] = value;
            bytes
        };
        let refused = [
            (with(0, b'E'), ElfError::NotElf),
            (with(4, 1), ElfError::OtherWordSize),
            (
                with(5, if cfg!(target_endian = "little") { 2 } else { 1 }),
                ElfError::OtherByteOrder,
            ),
            (with(16, 2), ElfError::NotShared), // ET_EXEC
        ];
        for (bytes, error) in refused {
            assert_eq!(check_shared_object(&bytes), Err(error));
        }
        assert_eq!(ElfHeader::parse(&bytes[..63]), Err(ElfError::NotElf));
        let end = bytes.len() as u64 + 1;
        let mut far = bytes.clone();
        far[40..48].copy_from_slice(&(end - u64::from(tables.section.entry_size)).to_ne_bytes());
        far[60..62].copy_from_slice(&1u16.to_ne_bytes()); // e_shnum
        let len = bytes.len() as u64;
        assert_eq!(
            check_shared_object(&far),
            Err(ElfError::HeadersPastEnd { len, end })
        );
    }
}

/* Seeds for the ELF fuzz target (seeds/elf_reader/): tiny shared objects that use the symbols
 * hotmod redirects, through each relocation kind the walker classifies. Built with
 *
 *   F="-shared -fPIC -Os -s -nostartfiles -Wl,-z,noseparate-code -Wl,--build-id=none \
 *      -Wl,--hash-style=gnu -fno-asynchronous-unwind-tables -Wl,-z,max-page-size=0x1000"
 *   gcc $F -o elf_reader/seed-lazy.so elf_seed.c                          # JUMP_SLOT
 *   gcc $F -fno-plt -Wl,-z,now -o elf_reader/seed-now.so elf_seed.c       # GLOB_DAT
 *   gcc $F -DABS64 -Wl,-z,norelro -o elf_reader/seed-abs.so elf_seed.c    # R_X86_64_64 too
 */
#include <pthread.h>
#include <threads.h>
extern int __cxa_thread_atexit_impl(void (*)(void *), void *, void *);
static pthread_key_t key;
static void dtor(void *p) { (void)p; }
#ifdef ABS64
void *(*const table[])(pthread_key_t) = {pthread_getspecific}; /* R_X86_64_64 */
#endif
int seed(void) {
  tss_t t;
  tss_create(&t, dtor);
  pthread_key_create(&key, dtor);
  pthread_setspecific(key, &key);
  void *v = pthread_getspecific(key);
  pthread_key_delete(key);
  return __cxa_thread_atexit_impl(dtor, v, 0);
}

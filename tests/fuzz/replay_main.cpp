// main() for builds without libFuzzer: runs the fuzz target once on every file named on the
// command line (directories are read in sorted order, not recursively). The test suite replays
// tests/fuzz/corpus and tests/fuzz/regressions this way with any compiler. A failing input aborts
// the process, after printing its path; so does an input that runs longer than
// CULOSS_FUZZ_REPLAY_TIMEOUT seconds (default 20: the inputs are small, a hang is a finding).
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.empty() || name[0] == '.') continue;  // ., .., .gitkeep
      const std::string path = dir + "/" + name;
      if (!is_dir(path)) out.push_back(path);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (is_dir(a)) {
      const std::vector<std::string> in = list(a);
      files.insert(files.end(), in.begin(), in.end());
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...: no input files found\n", argv[0]);
    return 2;
  }
  const char* limit_env = std::getenv("CULOSS_FUZZ_REPLAY_TIMEOUT");
  const unsigned limit = limit_env ? static_cast<unsigned>(std::atoi(limit_env)) : 20u;
  signal(SIGALRM, [](int) {
    const char msg[] = "culoss fuzz replay: TIMEOUT (the input above ran too long)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(124);
  });
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      return 2;
    }
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    std::fprintf(stderr, "replay %s (%zu bytes)\n", f.c_str(), bytes.size());
    std::fflush(stderr);
    alarm(limit);
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    alarm(0);
  }
  std::printf("replayed %zu inputs without a finding\n", files.size());
  return 0;
}

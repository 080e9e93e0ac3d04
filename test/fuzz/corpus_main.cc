// Runs a libFuzzer target over corpus files without libFuzzer: the regression test of a corpus.
// Usage: corpus_test [DIR_OR_FILE...]; without arguments, the directory in $FUZZ_CORPUS_DIR.
// Directories are read recursively. Fails if no input was found, so a wrong path cannot pass.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

bool runFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::fprintf(stderr, "running %s (%zu bytes)\n", path.c_str(), bytes.size());
  // A heap copy of exactly the input's size, as libFuzzer passes it: sanitizers see reads past
  // its end.
  auto input = std::make_unique<uint8_t[]>(bytes.size());
  std::copy(bytes.begin(), bytes.end(), input.get());
  LLVMFuzzerTestOneInput(input.get(), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<fs::path> roots(argv + 1, argv + argc);
  if (roots.empty()) {
    const char* dir = std::getenv("FUZZ_CORPUS_DIR");
    if (dir == nullptr) {
      std::fprintf(stderr, "usage: %s DIR_OR_FILE... (or set FUZZ_CORPUS_DIR)\n", argv[0]);
      return 2;
    }
    roots.emplace_back(dir);
  }
  int inputs = 0;
  for (const fs::path& root : roots) {
    std::error_code error;
    if (fs::is_regular_file(root, error)) {
      inputs += runFile(root) ? 1 : 0;
      continue;
    }
    std::vector<fs::path> files;
    for (fs::recursive_directory_iterator it(root, error), end; !error && it != end;
         it.increment(error)) {
      if (it->is_regular_file()) files.push_back(it->path());
    }
    if (error) {
      std::fprintf(stderr, "cannot read %s: %s\n", root.c_str(), error.message().c_str());
      return 1;
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) inputs += runFile(file) ? 1 : 0;
  }
  std::fprintf(stderr, "%d inputs ran\n", inputs);
  return inputs > 0 ? 0 : 1;
}

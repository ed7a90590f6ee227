// Manifest parsing: one line in memory, and a whole file read as a stream.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "ferry/manifest.h"

namespace ferry {
namespace {

std::string Line(int i) {
  return "project/run" + std::to_string(i % 100) + "/sample " +
         std::to_string(i) + ".dat\t" + std::to_string(4096 + i) +
         "\t99aa06d3014798d86001c324468d497f";
}

void BM_ParseManifestLine(benchmark::State& state) {
  std::string line = Line(12345);
  ManifestEntry entry;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ParseManifestLine(line, &entry));
  }
  state.SetBytesProcessed(state.iterations() * line.size());
}
BENCHMARK(BM_ParseManifestLine);

void BM_ReadManifestFile(benchmark::State& state) {
  const int lines = static_cast<int>(state.range(0));
  std::string path = "/tmp/ferry-bench-manifest-" + std::to_string(::getpid());
  size_t bytes = 0;
  {
    std::ofstream out(path);
    for (int i = 0; i < lines; ++i) {
      std::string line = Line(i);
      bytes += line.size() + 1;
      out << line << '\n';
    }
  }
  for (auto _ : state) {
    ManifestReader reader;
    if (!reader.Open(path).ok()) state.SkipWithError("cannot open manifest");
    ManifestEntry entry;
    int n = 0;
    while (reader.Next(&entry)) ++n;
    if (n != lines) state.SkipWithError("short read");
  }
  std::remove(path.c_str());
  state.SetItemsProcessed(state.iterations() * lines);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ReadManifestFile)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ferry

// XXH3-128 throughput: one-shot over buffers of file-like sizes, and
// streaming in the 16 KiB pieces an HTTP/2 stream delivers.
#include <benchmark/benchmark.h>

#include <string>

#include "ferry/digest.h"

namespace ferry {
namespace {

std::string Data(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>(i * 131 + 7);
  return data;
}

void BM_HashBuffer(benchmark::State& state) {
  std::string data = Data(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(HashBuffer(data.data(), data.size()));
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_HashBuffer)
    ->Arg(4 << 10)
    ->Arg(64 << 10)
    ->Arg(1 << 20)
    ->Arg(16 << 20);

void BM_HasherIn16KiBPieces(benchmark::State& state) {
  constexpr size_t kPiece = 16 << 10;
  std::string data = Data(static_cast<size_t>(state.range(0)));
  Hasher hasher;
  for (auto _ : state) {
    hasher.Reset();
    for (size_t at = 0; at < data.size(); at += kPiece) {
      hasher.Update(data.data() + at, std::min(kPiece, data.size() - at));
    }
    benchmark::DoNotOptimize(hasher.Final());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_HasherIn16KiBPieces)->Arg(1 << 20)->Arg(16 << 20);

}  // namespace
}  // namespace ferry

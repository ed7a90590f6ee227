// The ring writer: downloaded bytes to files through io_uring, as the
// transfer loop drives it (files begun while the buffer pool is within
// its budget, completions taken when the ring's eventfd says so), into a
// temporary folder on tmpfs (/dev/shm) and on the disk of the system's
// temporary folder. Small files: 2,000 of 4 KiB, each one linked chain of
// open, write, close and rename. Large files: 4 of 64 MiB, written at once
// in the 16 KiB pieces an HTTP/2 stream delivers. Page cache only: the
// writer does not fsync.
#include <benchmark/benchmark.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "disk/disk_writer.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

constexpr size_t kPiece = 16 << 10;

enum Where : int64_t { kTmpfs, kDisk };

// The file system's name for the label, as far as this knows it.
std::string FsName(const fs::path& dir) {
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) return "unknown";
  switch (st.f_type) {
    case TMPFS_MAGIC:
      return "tmpfs";
    case EXT4_SUPER_MAGIC:
      return "ext4";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    default:
      return "other";
  }
}

// A folder of this run below /dev/shm or the temporary folder; empty when
// /dev/shm is not tmpfs here.
fs::path BenchDir(Where where) {
  fs::path base =
      where == kTmpfs ? fs::path("/dev/shm") : fs::temp_directory_path();
  if (where == kTmpfs && FsName(base) != "tmpfs") return {};
  return base / ("ferry-writer-bench-" + std::to_string(::getpid()));
}

// Writes `files` files of `size` bytes below `dir`, `parallel` at a time,
// and waits until all have their final names. False on a write error.
bool WriteFiles(DiskWriter& disk, const fs::path& dir, size_t files,
                size_t size, size_t parallel, const std::string& data) {
  struct Open {
    DiskWriter::FileId id;
    size_t written;
  };
  std::vector<Open> open;
  size_t begun = 0;
  size_t done = 0;
  bool ok = true;
  while (done < files) {
    // New files while the pool has room, as the loop admits them.
    while (begun < files && open.size() < parallel && !disk.over_budget()) {
      DiskWriter::FileId id;
      std::string name =
          "d" + std::to_string(begun % 20) + "/f" + std::to_string(begun);
      if (!disk.Begin((dir / name).string(), 0, begun, &id).ok()) return false;
      open.push_back({id, 0});
      ++begun;
    }
    // One piece for each open file in turn, as streams deliver them.
    for (size_t i = 0; i < open.size();) {
      Open& f = open[i];
      size_t n = std::min(kPiece, size - f.written);
      disk.Append(f.id, data.data(), n);
      f.written += n;
      if (f.written < size) {
        ++i;
        continue;
      }
      disk.Finish(f.id, DiskWriter::Ending::kCommit);
      open[i] = open.back();
      open.pop_back();
    }
    disk.Submit();
    if (open.empty() || disk.over_budget()) {
      pollfd p{disk.event_fd(), POLLIN, 0};
      ::poll(&p, 1, 100);
    }
    disk.Poll([&](uint64_t, const Status& status) {
      ++done;
      ok = ok && status.ok();
    });
  }
  return ok;
}

// Args: where, files, size of each.
void BM_DiskWriter(benchmark::State& state) {
  const auto where = static_cast<Where>(state.range(0));
  const auto files = static_cast<size_t>(state.range(1));
  const auto size = static_cast<size_t>(state.range(2));
  const fs::path dir = BenchDir(where);
  if (dir.empty()) {
    state.SkipWithError("/dev/shm is not tmpfs here");
    return;
  }
  std::unique_ptr<DiskWriter> disk;
  if (Status s = DiskWriter::Create(DiskOptions(), &disk); !s.ok()) {
    state.SkipWithError(s.error().message().c_str());
    return;
  }
  const std::string data(kPiece, 'x');
  fs::create_directories(dir);
  state.SetLabel(FsName(dir));
  int round = 0;
  for (auto _ : state) {
    // A fresh folder each round: the writer remembers the folders it made.
    const fs::path into = dir / std::to_string(round++);
    if (!WriteFiles(*disk, into, files, size, 64, data)) {
      state.SkipWithError("a file could not be written");
      break;
    }
    state.PauseTiming();
    fs::remove_all(into);
    state.ResumeTiming();
  }
  fs::remove_all(dir);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(files));
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(files * size));
}
BENCHMARK(BM_DiskWriter)
    ->ArgNames({"where", "files", "size"})
    ->Args({kTmpfs, 2000, 4 << 10})
    ->Args({kDisk, 2000, 4 << 10})
    ->Args({kTmpfs, 4, 64 << 20})
    ->Args({kDisk, 4, 64 << 20})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ferry

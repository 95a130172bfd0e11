// comm_mpi.cpp: the MPI communicator over MPI_COMM_WORLD (built only when meson finds MPI).
// MPI errors are turned into lowbit::Error (MPI_ERRORS_RETURN) so the CLI reports them.
// Only the C API: skip Open MPI's deprecated C++ bindings (and their warnings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>

#include "core/comm.h"
#include "core/error.h"

namespace lowbit {

namespace {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw Error(detail::concat("MPI ", what, " failed: ", std::string(text, static_cast<size_t>(len))));
}

// MPI counts are int: split longer buffers into chunks (the same split on every rank).
constexpr int64_t kMaxChunk = INT_MAX / 2;

class MpiComm final : public Comm {
 public:
  MpiComm() {
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "Comm_size");
    // Ranks sharing this node's memory = ranks sharing its cores (thread defaults).
    MPI_Comm node;
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
              "Comm_split_type");
    check_mpi(MPI_Comm_size(node, &local_size_), "Comm_size");
    MPI_Comm_free(&node);
  }
  const char* backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }

  void allreduce_sum(float* data, int64_t count) override { allreduce(data, count, MPI_FLOAT); }
  void allreduce_sum(double* data, int64_t count) override { allreduce(data, count, MPI_DOUBLE); }

  void broadcast(void* data, int64_t bytes, int root) override {
    LOWBIT_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " out of range for ", size_, " ranks");
    auto* p = static_cast<char*>(data);
    for (int64_t off = 0; off < bytes; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, bytes - off));
      check_mpi(MPI_Bcast(p + off, n, MPI_BYTE, root, MPI_COMM_WORLD), "Bcast");
    }
  }

  void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "Barrier"); }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; keep [[noreturn]] honest anyway
  }

 private:
  template <class T>
  void allreduce(T* data, int64_t count, MPI_Datatype type) {
    for (int64_t off = 0; off < count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - off));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + off, n, type, MPI_SUM, MPI_COMM_WORLD), "Allreduce");
    }
  }

  int rank_ = 0, size_ = 1, local_size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // FUNNELED: only the main thread calls MPI (the training loop, BN sync hooks inside forward
    // and backward); TBB workers never do.
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "Init_thread");
  }
  return std::make_unique<MpiComm>();
}

void finalize_mpi_comm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace lowbit

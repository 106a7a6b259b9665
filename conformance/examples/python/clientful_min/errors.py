"""Error classes (spec §4, ERR-1): short names and their numbers."""

CLASSES = {
    "MALFORMED": 1,
    "NON_CANONICAL": 2,
    "UNSUPPORTED_VERSION": 3,
    "LIMIT_EXCEEDED": 4,
    "INVALID_KEY": 5,
    "BAD_SIGNATURE": 6,
    "UNKNOWN_SIGNER": 7,
    "WRONG_CONTEXT": 8,
    "UNKNOWN_EPOCH": 9,
    "DECRYPT_FAILED": 10,
    "REPLAY": 11,
    "EQUIVOCATION": 12,
    "NOT_A_MEMBER": 13,
    "REMOVED_MEMBER": 14,
    "INVALID_OPERATION": 15,
    "STORAGE_CORRUPT": 16,
    "STORAGE_VERSION": 17,
    "ROLLBACK": 18,
    "EXPIRED": 19,
}


class Rejected(Exception):
    """An input the protocol rejects, with exactly one class (ERR-2)."""

    def __init__(self, cls, why=""):
        if cls not in CLASSES:
            raise ValueError(f"unknown error class {cls}")
        super().__init__(f"{cls}: {why}" if why else cls)
        self.cls = cls

    @property
    def number(self):
        return CLASSES[self.cls]

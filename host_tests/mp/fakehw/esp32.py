class Partition:
    TYPE_DATA = 1

    @staticmethod
    def find(kind, label=None):
        return []

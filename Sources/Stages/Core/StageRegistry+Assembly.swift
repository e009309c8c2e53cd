extension StageRegistry {
    /// Architecture-neutral stages that turn trees into images.
    package static let assemblyStages: [any Stage.Type] = [
        Truncate.self,
        Sfdisk.self,
        MkfsFat.self,
        MkfsExt4.self,
        MkfsXfs.self,
        Mkswap.self,
        LVM2Create.self,
        Grub2Inst.self,
        QemuConvert.self,
        Tar.self,
        XZ.self,
        Zstd.self,
        OVF.self,
        OCIArchive.self,
    ]
}

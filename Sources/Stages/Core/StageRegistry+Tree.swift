extension StageRegistry {
    /// Stages that build a target tree (run on an agent of the target architecture).
    package static let treeStages: [any Stage.Type] = [
        DebianInstall.self,
        AptSources.self,
        Hostname.self,
        SystemLocale.self,
        Timezone.self,
        Groups.self,
        Users.self,
        SystemdUnits.self,
        Fstab.self,
        KernelCmdline.self,
        Grub2Config.self,
        Grub2EFI.self,
        MachineID.self,
        InitramfsStage.self,
        CloudInit.self,
        Keymap.self,
        Timesyncd.self,
        SSHDConfig.self,
        CACerts.self,
        FirstBoot.self,
        TreeFileTree.self,
        Nftables.self,
        Firewalld.self,
        SSHHostKeys.self,
    ]
}

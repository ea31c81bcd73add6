"""S5's notebook cells, with only their imports pointed at `mnist_course`, run start to finish.

Two lines are added, marked `# subset`, so the run takes seconds: the datasets are cut to subsets and the loop runs
one epoch. Everything else is S5's code, including `datasets.MNIST('../data', download=True)`, the
`DataLoader` with two worker processes, and the 20-epoch loop's calls.
"""
import os
import matplotlib.pyplot as plt
import torch
from torch.utils.data import Subset
from mnist_course.data import MNIST_FILES

def test_seed_s5_cells(tmp_path, monkeypatch, mnist_root):
    (tmp_path/'data').symlink_to(mnist_root, target_is_directory=True)  # S5's '../data'
    (tmp_path/'nb').mkdir(); monkeypatch.chdir(tmp_path/'nb')

    # CODE BLOCK: 1
    from mnist_course.model import Net, Net2, train, test, get_incorrect_test_predictions
    from mnist_course.utils import display_data, display_model_stats, plot_test_incorrect_predictions
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torchvision import datasets, transforms

    # CODE BLOCK: 2
    cuda = torch.cuda.is_available()
    print("CUDA Available?", cuda)
    device = torch.device("cuda" if cuda else "cpu")

    # CODE BLOCK: 3
    train_transforms = transforms.Compose([
        transforms.RandomApply([transforms.CenterCrop(22), ], p=0.1),
        transforms.Resize((28, 28)),
        transforms.RandomRotation((-15., 15.), fill=0),
        transforms.ToTensor(),
        transforms.Normalize((0.1307,), (0.3081,)),
        ])
    test_transforms = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize((0.1307,), (0.3081,))
        ])

    # CODE BLOCK: 4
    train_data = datasets.MNIST('../data', train=True, download=True, transform=train_transforms)
    test_data = datasets.MNIST('../data', train=False, download=True, transform=test_transforms)
    train_data, test_data = Subset(train_data, range(2048)), Subset(test_data, range(1024))  # subset

    # CODE BLOCK: 5
    batch_size = 512
    kwargs = {'batch_size': batch_size, 'shuffle': True, 'num_workers': 2, 'pin_memory': True}
    test_loader = torch.utils.data.DataLoader(test_data, **kwargs)
    train_loader = torch.utils.data.DataLoader(train_data, **kwargs)

    # CODE BLOCK: 6
    display_data(train_loader)

    # CODE BLOCK: 7
    model = Net().to(device)
    model.summary(input_size=(1, 28, 28))

    # CODE BLOCK: 8
    model = Net().to(device)
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=15, gamma=0.1)
    criterion = F.cross_entropy
    num_epochs = 20
    num_epochs = 1  # subset
    for epoch in range(1, num_epochs+1):
        print(f'Epoch {epoch}')
        train_acc, train_losses = train(model, device, train_loader, optimizer, criterion)
        test_acc, test_losses = test(model, device, test_loader, criterion)
        scheduler.step()

    # CODE BLOCK: 9
    display_model_stats(train_losses, train_acc, test_losses, test_acc)

    # CODE BLOCK: 10
    incorrect_pred = get_incorrect_test_predictions(model, device, test_loader)
    plot_test_incorrect_predictions(incorrect_pred)

    # CODE BLOCK: 11
    model2 = Net2().to(device)
    model2.summary(input_size=(1, 28, 28))

    # What the run must have produced:
    assert len(train_acc) == len(test_acc) == 1 and 0 < test_acc[0] <= 100
    assert len(incorrect_pred['images']) == round(1024 * (100 - test_acc[0]) / 100)
    assert sorted(p.name for p in (tmp_path/'data'/'MNIST'/'raw').iterdir() if p.name in MNIST_FILES) == sorted(MNIST_FILES)
    plt.close('all')

def test_two_models_keep_separate_histories(mnist_root):
    "S5's global lists mixed two runs; here each model keeps its own history."
    import torch.nn.functional as F
    from mnist_course.data import get_datasets, get_loaders, subset, s5_test_transforms
    from mnist_course.model import Net, Net2, train, test
    from mnist_course.training import s5_optimizer
    tr, te = get_datasets(mnist_root, s5_test_transforms(), s5_test_transforms())
    tl, vl = get_loaders(subset(tr, 512), subset(te, 256), batch_size=128, num_workers=0)
    a, b = Net(), Net2()
    oa, ob = s5_optimizer(a), s5_optimizer(b)
    acc_a, _ = train(a, 'cpu', tl, oa, F.cross_entropy)
    for _ in range(2): acc_b, _ = train(b, 'cpu', tl, ob, F.cross_entropy)
    test(a, 'cpu', vl, F.cross_entropy)
    assert len(acc_a) == 1 and len(acc_b) == 2 and acc_a is not acc_b
    assert len(a.history.test_acc) == 1 and b.history.test_acc == []
